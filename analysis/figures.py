"""Figures: labelled image grids saved atomically, and the grids of a model (reconstructions,
prior samples, latent traversals, interpolations).

Every figure has a fixed pixel size that depends only on its number of rows and columns
(never on the text it holds), so a grid of R x C images of side S is exactly
``grid_pixel_size(R, C, S, ...)`` pixels. Images are drawn pixel-exact: each image pixel
becomes a ``scale`` x ``scale`` block of screen pixels, with no resampling blur.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from model import Architecture, to_float  # noqa: E402
from system.errors import UserError  # noqa: E402
from system.files import atomic_write  # noqa: E402

from . import latents  # noqa: E402
from .evaluation import decode_latents, encode_images  # noqa: E402

DPI = 100
SCALE = 2            # screen pixels per image pixel
GAP = 4              # pixels between neighbouring images
BREAK = 18           # pixels between column groups (e.g. originals | interpolation)
ROW_LABEL_PX = 180   # left margin when rows are labelled
COL_LABEL_PX = 30    # top band when columns are labelled
TITLE_PX = 40        # top band for the title
MARGIN_PX = 10       # right and bottom margin (and left/top when nothing else is there)
FONT_SIZE = 11
TITLE_SIZE = 13
BACKGROUND = 1.0     # white

matplotlib.rcParams.update({"font.family": "DejaVu Sans", "savefig.dpi": DPI})


def save_figure(fig: Figure, path) -> Path:
    """Write ``fig`` to ``path`` as PNG, atomically."""
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=fig.dpi, facecolor="white"), fsync=False)


def to_hwc(image) -> np.ndarray:
    """One image (3, H, W) -- float in [0, 1] or uint8 -- as float (H, W, 3) in [0, 1]."""
    image = np.asarray(to_float(np.asarray(image)), np.float32)
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


# --------------------------------------------------------------------------- figures of a model

def reconstruction_grid(params, images, path, *, mu=None, indices=None) -> Path:
    """Originals (top row) over their reconstructions decoded from μ (bottom row).

    ``mu``: the images' posterior means when already computed.
    """
    if mu is None:
        mu, _ = encode_images(params, images)
    recon = decode_latents(params, mu)
    indices = range(len(images)) if indices is None else indices
    return image_grid([list(images), list(recon)], path, row_labels=["original", "reconstruction"],
                      col_labels=[f"#{i}" for i in indices],
                      title="Held-out test images and their reconstructions (decoded from μ)")


def prior_samples(params, num_samples: int, seed: int) -> np.ndarray:
    """Decodes (N, 3, H, W) of ``num_samples`` draws z ~ N(0, I) from a NumPy generator seeded with ``seed``.

    (NumPy rather than jax.random: the same draws on every backend, and no PRNG kernel to compile.)
    """
    latent_dim = Architecture.of(params).latent_dim
    z = np.random.default_rng(seed).standard_normal((num_samples, latent_dim), dtype=np.float32)
    return decode_latents(params, z)


def samples_grid(params, num_samples: int, seed: int, path) -> Path:
    samples = prior_samples(params, num_samples, seed)
    rows, cols = square_layout(num_samples)
    grid = [[samples[r * cols + c] if r * cols + c < num_samples else None for c in range(cols)]
            for r in range(rows)]
    return image_grid(grid, path, title=f"Samples from the prior, z ~ N(0, I) (seed {seed})")


def traversal_grid(params, image, kl, path, *, mu=None, num_dims=8, steps=9, relative=False,
                   index=0, labels=None) -> tuple[Path, np.ndarray]:
    """The latent traversal figure around ``image``'s μ (given, or computed here).

    ``kl``: (D,) average KL of each latent dimension, which orders the rows; ``labels``: an
    optional {dimension: text} added to the row labels (e.g. the factor it carries).
    Returns (path, the dimensions shown).
    """
    if mu is None:
        mu = encode_images(params, np.asarray(image)[None])[0][0]
    dims = latents.rank_dimensions(kl)[:num_dims]
    values = latents.traversal_values(steps)
    z = latents.traversal_latents(mu, dims, values, relative=relative)
    decoded = decode_latents(params, z.reshape(-1, z.shape[-1])).reshape(z.shape[:2] + (-1,) + image.shape[-2:])
    grid = [[image if i == 0 else None] + list(decoded[i]) for i in range(len(dims))]
    sign = "Δ" if relative else ""
    col_labels = [f"input #{index}"] + [sign + latents.format_value(v) for v in values]
    labels = labels or {}
    row_labels = [f"z{d}" + (f" · {labels[d]}" if d in labels else "") + f"\nKL {kl[d]:.2f}" for d in dims]
    how = "shifted by" if relative else "set to"
    title = f"Latent traversals: top {len(dims)} dimensions by KL, each {how} -3 ... +3, others at μ"
    return image_grid(grid, path, row_labels=row_labels, col_labels=col_labels, title=title,
                      col_breaks=(0,)), dims


def interpolation_figure(params, images, pairs, path, *, steps=8, mode="linear", names=None) -> Path:
    """One row per pair: original a, decodes from μ_a through μ_b, original b.

    ``names``: what the images are called in the labels (default: "#i", test images by index).
    """
    needed = 1 + max(max(p) for p in pairs)
    if needed > len(images):
        raise UserError(f"image index {needed - 1} is past the {len(images)} test images available; "
                        f"pick indices below {len(images)}.")
    used = sorted({i for p in pairs for i in p})
    mu, _ = encode_images(params, images[used])
    code = {i: mu[k] for k, i in enumerate(used)}
    codes = np.stack([latents.interpolate_latents(code[a], code[b], steps, mode) for a, b in pairs])
    decoded = decode_latents(params, codes.reshape(-1, codes.shape[-1]))
    decoded = decoded.reshape(codes.shape[:2] + decoded.shape[1:])
    grid = [[images[a]] + list(row) + [images[b]] for (a, b), row in zip(pairs, decoded)]
    times = latents.interpolation_times(steps)
    col_labels = ["original a", "recon. a"] + [f"t = {t:.2f}" for t in times[1:-1]] + ["recon. b", "original b"]
    row_labels = [f"{names[a]}\n→ {names[b]}" if names else f"#{a} → #{b}" for a, b in pairs]
    name = "spherical (slerp)" if mode == "slerp" else "linear"
    title = f"Latent interpolation between {'images' if names else 'test images'} ({name}, decoded from μ)"
    return image_grid(grid, path, row_labels=row_labels, col_labels=col_labels, title=title,
                      col_breaks=(0, steps + 2))
