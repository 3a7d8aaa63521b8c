"""Procedural colour sprites with known generative factors (the embedded dataset).

A small dataset in the spirit of dSprites (Matthey et al. 2017) that needs no
download: 64x64 RGB images of one sprite on a black background, generated from
six independent factors

    shape        3   square, ellipse, heart
    scale        6   0.5 ... 1.0, linearly spaced
    orientation 40   k * 2*pi / 40, k = 0..39 (counter-clockwise on screen)
    pos_x       32   sprite centre at column 16 + k (k = 0..31)
    pos_y       32   sprite centre at row 16 + k (rows grow downwards)
    color        6   red, yellow, green, cyan, blue, magenta (fully saturated)

Every image is addressable from its factor indices: ``render(factors)`` is a
pure function of the integer factor matrix. The square has a fourfold and the
ellipse a twofold rotational symmetry, so for them some orientation indices
give identical pictures (as in dSprites).

Rendering is fast because each of the 3 * 6 * 40 = 720 (shape, scale,
orientation) sprites is drawn only once, as an antialiased 33x33 alpha mask
(drawn with Pillow at 4x resolution and box-filtered down), kept in memory,
and then placed at integer positions and tinted with NumPy. The position grid
is chosen so that every sprite, at any scale and orientation, lies entirely
inside the frame: no sprite is ever clipped. At scale 1.0 the square is 20 px
wide, the ellipse 22 x 15 px and the heart 22 px wide.

Splits: ``make_split`` draws uniform random factor combinations with a fixed
seed per split. The 4,423,680 possible combinations are partitioned once by a
fixed hash into 90 % train, 5 % val and 5 % test, and each split draws only
from its own part, so validation and test images are never training images.
A smaller ``n`` returns a prefix of the same sequence.

Example::

    python -m imagedata.shapes --split train --n 16 --out sprites.png   # a sample grid
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image, ImageDraw

from . import factors as factors_
from .decoding import IMAGE_SIZE
from .options import SPLITS  # noqa: F401  (part of the dataset interface)
SHAPE_NAMES = ("square", "ellipse", "heart")
SCALES = np.linspace(0.5, 1.0, 6)
NUM_ORIENTATIONS = 40
ORIENTATIONS = np.arange(NUM_ORIENTATIONS) * (2.0 * math.pi / NUM_ORIENTATIONS)
NUM_POSITIONS = 32
COLOR_NAMES = ("red", "yellow", "green", "cyan", "blue", "magenta")
COLORS = np.array(
    [
        [255, 0, 0],
        [255, 255, 0],
        [0, 255, 0],
        [0, 255, 255],
        [0, 0, 255],
        [255, 0, 255],
    ],
    dtype=np.uint8,
)
NUM_COLORS = len(COLORS)

FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y", "color")
FACTOR_SIZES = (len(SHAPE_NAMES), len(SCALES), NUM_ORIENTATIONS, NUM_POSITIONS, NUM_POSITIONS, NUM_COLORS)
NUM_COMBINATIONS = int(np.prod(FACTOR_SIZES))

# Sprite canvas: 33x33 pixels, sprite centre at the middle of pixel (16, 16).
# Position index k puts the canvas corner at pixel k, so the centre lands on
# pixel 16 + k; with k <= 31 the canvas ends at pixel 63, inside the frame.
SPRITE_SIZE = 33
SPRITE_CENTER = SPRITE_SIZE // 2
SUPERSAMPLE = 4
# Half-widths in output pixels at scale 1.0 (the largest sprite reaches
# 10 * sqrt(2) ~ 14.1 px from its centre, well inside the 16.5 px canvas).
_SQUARE_HALF = 10.0
_ELLIPSE_HALF = (11.0, 7.5)
_HEART_HALF = 11.0

DEFAULT_SIZES = {"train": 50_000, "val": 2_000, "test": 2_000}
BASE_SEED = 64_2017
_RENDER_CHUNK = 2048


def _outline(shape: int) -> np.ndarray:
    """Closed outline of a shape at scale 1.0, in pixels, centred at 0, y down."""
    if shape == 0:
        h = _SQUARE_HALF
        return np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
    if shape == 1:
        t = np.linspace(0.0, 2.0 * math.pi, 160, endpoint=False)
        return np.stack([_ELLIPSE_HALF[0] * np.cos(t), _ELLIPSE_HALF[1] * np.sin(t)], axis=1)
    t = np.linspace(0.0, 2.0 * math.pi, 320, endpoint=False)
    x = 16.0 * np.sin(t) ** 3
    y = -(13.0 * np.cos(t) - 5.0 * np.cos(2 * t) - 2.0 * np.cos(3 * t) - np.cos(4 * t))
    pts = np.stack([x, y], axis=1)
    pts -= (pts.max(axis=0) + pts.min(axis=0)) / 2.0  # centre the bounding box
    return pts * (_HEART_HALF / np.abs(pts[:, 0]).max())


def _draw_mask(shape: int, scale: float, angle: float) -> np.ndarray:
    """One antialiased uint8 alpha mask of size SPRITE_SIZE x SPRITE_SIZE."""
    pts = _outline(shape) * scale
    c, s = math.cos(angle), math.sin(angle)
    # Counter-clockwise on screen, where y points down.
    rot = np.array([[c, -s], [s, c]])
    pts = pts @ rot
    big = SPRITE_SIZE * SUPERSAMPLE
    centre = (SPRITE_CENTER + 0.5) * SUPERSAMPLE  # middle of the centre pixel
    pts = pts * SUPERSAMPLE + centre
    canvas = Image.new("L", (big, big), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in pts.tolist()], fill=255)
    small = canvas.resize((SPRITE_SIZE, SPRITE_SIZE), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.uint8)


@functools.lru_cache(maxsize=1)
def sprite_masks() -> np.ndarray:
    """All 720 alpha masks, uint8 (3, 6, 40, 33, 33), drawn once per process."""
    masks = np.empty(FACTOR_SIZES[:3] + (SPRITE_SIZE, SPRITE_SIZE), dtype=np.uint8)
    for shape in range(FACTOR_SIZES[0]):
        for i, scale in enumerate(SCALES):
            for k, angle in enumerate(ORIENTATIONS):
                masks[shape, i, k] = _draw_mask(shape, float(scale), float(angle))
    masks.setflags(write=False)
    return masks


def _check_factors(factors) -> np.ndarray:
    return factors_.check(factors, FACTOR_NAMES, FACTOR_SIZES)


def render(factors) -> np.ndarray:
    """Images for integer factors (N, 6) -> uint8 (N, 3, 64, 64); deterministic."""
    f = _check_factors(factors)
    n = f.shape[0]
    out = np.zeros((n, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    masks = sprite_masks()
    colors = COLORS.astype(np.uint16)
    k = SPRITE_SIZE
    for start in range(0, n, _RENDER_CHUNK):
        ff = f[start:start + _RENDER_CHUNK]
        alpha = masks[ff[:, 0], ff[:, 1], ff[:, 2]].astype(np.uint16)  # (m, 33, 33)
        tint = colors[ff[:, 5]]  # (m, 3)
        sprites = ((alpha[:, None] * tint[:, :, None, None] + 127) // 255).astype(np.uint8)
        for i, (x, y) in enumerate(ff[:, 3:5].tolist()):
            out[start + i, :, y:y + k, x:x + k] = sprites[i]
    return out


DATASET = factors_.FactorDataset("sprites", FACTOR_NAMES, FACTOR_SIZES, render, base_seed=BASE_SEED,
                                 default_sizes=DEFAULT_SIZES, doc=__doc__)
# the interface every dataset with factors has (imagedata/factors.py)
sample_factors, flat_index, split_of = DATASET.sample_factors, DATASET.flat_index, DATASET.split_of
split_factors, make_split, main = DATASET.split_factors, DATASET.make_split, DATASET.main


if __name__ == "__main__":
    main()
