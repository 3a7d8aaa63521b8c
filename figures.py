"""Figure helpers shared by the analysis scripts: labelled image grids and atomic PNG saving.

Every figure has a fixed pixel size that depends only on its number of rows and columns
(never on the text it holds), so a grid of R x C images of side S is exactly
``grid_pixel_size(R, C, S, ...)`` pixels. Images are drawn pixel-exact: each image pixel
becomes a ``scale`` x ``scale`` block of screen pixels, with no resampling blur.
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

DPI = 100
SCALE = 2            # screen pixels per image pixel
GAP = 4              # pixels between neighbouring images
BREAK = 18           # pixels between column groups (e.g. originals | interpolation)
ROW_LABEL_PX = 150   # left margin when rows are labelled
COL_LABEL_PX = 30    # top band when columns are labelled
TITLE_PX = 40        # top band for the title
MARGIN_PX = 10       # right and bottom margin (and left/top when nothing else is there)
FONT_SIZE = 11
TITLE_SIZE = 13
BACKGROUND = 1.0     # white

matplotlib.rcParams.update({"font.family": "DejaVu Sans", "savefig.dpi": DPI})


def save_figure(fig: Figure, path) -> Path:
    """Write ``fig`` to ``path`` as PNG through a temporary file renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        fig.savefig(tmp, format="png", dpi=fig.dpi, facecolor="white")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def to_hwc(image) -> np.ndarray:
    """One image (3, H, W) -- float in [0, 1] or uint8 -- as float (H, W, 3) in [0, 1]."""
    image = np.asarray(image)
    image = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)
    return np.clip(np.transpose(image, (1, 2, 0)), 0.0, 1.0)


def _offsets(n: int, cell: int, breaks) -> np.ndarray:
    """Left (or top) pixel of each of ``n`` cells of side ``cell``, with a wider gap after ``breaks``."""
    offsets, pos = [], 0
    for i in range(n):
        offsets.append(pos)
        pos += cell + (BREAK if i in breaks else GAP)
    return np.array(offsets, int)


def _extent(n: int, cell: int, breaks) -> int:
    return 0 if n == 0 else int(_offsets(n, cell, breaks)[-1] + cell)


def grid_pixel_size(rows: int, cols: int, image_size: int = 64, *, row_labels: bool = False,
                    col_labels: bool = False, title: bool = False, col_breaks=(), scale: int = SCALE) -> tuple[int, int]:
    """(width, height) in pixels of the figure ``image_grid`` draws with these options."""
    cell = image_size * scale
    breaks = {b for b in col_breaks if 0 <= b < cols - 1}
    width = (ROW_LABEL_PX if row_labels else MARGIN_PX) + _extent(cols, cell, breaks) + MARGIN_PX
    top = (TITLE_PX if title else 0) + (COL_LABEL_PX if col_labels else 0)
    height = max(top, MARGIN_PX) + _extent(rows, cell, ()) + MARGIN_PX
    return width, height


def mosaic(images, *, col_breaks=(), scale: int = SCALE) -> np.ndarray:
    """A (rows, cols) nested list of (3, H, W) images (None: empty cell) as one HWC float array."""
    rows, cols = len(images), max(len(r) for r in images)
    first = next(im for row in images for im in row if im is not None)
    size = np.asarray(first).shape[-1]
    cell = size * scale
    breaks = {b for b in col_breaks if 0 <= b < cols - 1}
    xs, ys = _offsets(cols, cell, breaks), _offsets(rows, cell, ())
    out = np.full((_extent(rows, cell, ()), _extent(cols, cell, breaks), 3), BACKGROUND, np.float32)
    for r, row in enumerate(images):
        for c, image in enumerate(row):
            if image is None:
                continue
            block = np.repeat(np.repeat(to_hwc(image), scale, axis=0), scale, axis=1)
            out[ys[r]:ys[r] + cell, xs[c]:xs[c] + cell] = block
    return out


def image_grid(images, path, *, row_labels=None, col_labels=None, title=None, col_breaks=(),
               scale: int = SCALE) -> Path:
    """Draw a labelled grid of images and save it as a PNG of size ``grid_pixel_size(...)``.

    images: nested list ``[row][col]`` of (3, H, W) arrays (float in [0, 1] or uint8), or an
    array (rows, cols, 3, H, W); ``None`` leaves a cell empty. ``col_breaks``: indices of
    columns followed by a wider gap.
    """
    images = [list(row) for row in images]
    rows, cols = len(images), max(len(r) for r in images)
    picture = mosaic(images, col_breaks=col_breaks, scale=scale)
    first = next(im for row in images for im in row if im is not None)
    size = np.asarray(first).shape[-1]
    width, height = grid_pixel_size(rows, cols, size, row_labels=row_labels is not None,
                                    col_labels=col_labels is not None, title=title is not None,
                                    col_breaks=col_breaks, scale=scale)
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")
    left = ROW_LABEL_PX if row_labels is not None else MARGIN_PX
    ph, pw = picture.shape[:2]
    bottom = MARGIN_PX
    ax = fig.add_axes((left / width, bottom / height, pw / width, ph / height))
    ax.imshow(picture, interpolation="nearest", extent=(0, pw, ph, 0), aspect="auto", resample=False)
    ax.set_xlim(0, pw)
    ax.set_ylim(ph, 0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    cell = size * scale
    breaks = {b for b in col_breaks if 0 <= b < cols - 1}
    if col_labels is not None:
        ax.xaxis.tick_top()
        ax.set_xticks(_offsets(cols, cell, breaks) + cell / 2, [str(s) for s in col_labels][:cols] +
                      [""] * max(0, cols - len(col_labels)), fontsize=FONT_SIZE)
        ax.tick_params(axis="x", length=0, pad=4)
    else:
        ax.set_xticks([])
    if row_labels is not None:
        ax.set_yticks(_offsets(rows, cell, ()) + cell / 2, [str(s) for s in row_labels][:rows] +
                      [""] * max(0, rows - len(row_labels)), fontsize=FONT_SIZE)
        ax.tick_params(axis="y", length=0, pad=8)
    else:
        ax.set_yticks([])
    if title is not None:
        fig.text(0.5, 1 - (TITLE_PX / 2) / height, title, ha="center", va="center", fontsize=TITLE_SIZE)
    return save_figure(fig, path)


def square_layout(n: int) -> tuple[int, int]:
    """(rows, cols) of the most square grid holding ``n`` images, wider than tall when not square."""
    cols = max(1, int(np.ceil(np.sqrt(n))))
    return max(1, -(-n // cols)), cols
