"""Procedural cartoon faces with known generative factors (the embedded face dataset).

64x64 RGB cartoon portraits -- head, ears, neck and shirt, eyes with pupils,
eyebrows, nose, mouth and hair on a coloured background -- generated from
eleven independent factors. A factor is named after the CelebA attribute it
stands for where one exists, so that a model trained here can be read next to
one trained on CelebA:

    background   4  sky, mint, peach, lavender: a full-frame colour, so the
                    model must reconstruct every pixel, not only the face
    Pale_Skin    4  pale, light, tan, dark skin (head, ears, neck; the nose,
                    inner ears and chin shadow are a darker shade of it, and
                    the lips a red that stays visible on every tone)
    hair_color   5  black, brown, blond, gray, red; the eyebrows and the
                    mustache share it, so it shows even on a bald head
    hair_style   4  bald, bangs (a bob with a straight fringe), short, long
    Chubby       3  narrow, oval, chubby: the width of the head; ears, hair,
                    hat and glasses follow it
    Smiling      4  frown, neutral, smile, grin (open, with teeth)
    Narrow_Eyes  3  narrow, normal, wide: the height of the eyes
    Eyeglasses   2  none, glasses (thick dark round frames)
    head_tilt    5  -12, -6, 0, 6, 12 degrees, counter-clockwise on screen,
                    about a point at the chin: a small pose factor
    Wearing_Hat  2  none, a red beanie with a pompom
    Mustache     2  none, mustache

4 * 4 * 5 * 4 * 3 * 4 * 3 * 2 * 5 * 2 * 2 = 460,800 combinations. Every
factor changes the picture in every combination (no feature hides another
completely), and the features are large enough to survive a blurry 64 px
VAE: eyes are 7 px wide, the mouth 14 px, the glasses' frames 1.6 px thick.

Rendering: each face is a stack of ten alpha-composited layers (back hair,
shirt, skin, shading, mouth, whites of eyes and teeth, pupils, front hair with
eyebrows and mustache, glasses, hat) over the background colour. The shape of
a layer depends only on a few factors (always including the tilt), so all of
its shapes -- 366 masks in all, 2 MB -- are drawn once per process from
implicit shapes sampled 4x4 per pixel (antialiased coverage in [0, 1]) and
cached; ``render`` then only looks masks up and blends colours with
vectorised NumPy, each layer within its bounding box.

Splits: as in ``shapes.py``, ``make_split`` draws uniform random factor
combinations with a fixed seed per split; the combinations are partitioned
once by a fixed hash into 90 % train, 5 % val and 5 % test, so validation and
test faces are never training faces. A smaller ``n`` is a prefix of the same
sequence.

Example::

    python -m imagedata.faces --split train --n 32 --out faces.png   # a sample grid
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import NamedTuple

import numpy as np

from . import factors as factors_
from .decoding import IMAGE_SIZE
from .options import SPLITS  # noqa: F401  (part of the dataset interface)
FACTOR_LEVELS = {
    "background": ("sky", "mint", "peach", "lavender"),
    "Pale_Skin": ("pale", "light", "tan", "dark"),
    "hair_color": ("black", "brown", "blond", "gray", "red"),
    "hair_style": ("bald", "bangs", "short", "long"),
    "Chubby": ("narrow", "oval", "chubby"),
    "Smiling": ("frown", "neutral", "smile", "grin"),
    "Narrow_Eyes": ("narrow", "normal", "wide"),
    "Eyeglasses": ("none", "glasses"),
    "head_tilt": ("-12°", "-6°", "0°", "+6°", "+12°"),
    "Wearing_Hat": ("none", "hat"),
    "Mustache": ("none", "mustache"),
}
FACTOR_NAMES = tuple(FACTOR_LEVELS)
FACTOR_SIZES = tuple(len(levels) for levels in FACTOR_LEVELS.values())
NUM_COMBINATIONS = int(np.prod(FACTOR_SIZES))
TILT_DEGREES = (-12.0, -6.0, 0.0, 6.0, 12.0)

BACKGROUND_COLORS = np.array([[150, 200, 235], [165, 222, 185], [247, 203, 165], [205, 185, 232]], np.float32)
SKIN_COLORS = np.array([[255, 226, 208], [238, 190, 152], [196, 138, 92], [142, 94, 64]], np.float32)
SKIN_SHADE = 0.78  # nose and inner ears: the skin colour times this
MOUTH_COLORS = np.array([[196, 64, 76], [160, 40, 52], [122, 28, 40], [62, 16, 24]], np.float32)  # per skin tone
HAIR_COLORS = np.array([[32, 28, 30], [88, 50, 24], [238, 200, 105], [172, 172, 176], [196, 78, 34]], np.float32)
FIXED_COLORS = {
    "shirt": (62, 84, 128),
    "white": (252, 252, 250),
    "pupil": (30, 24, 36),
    "glasses": (24, 24, 30),
    "hat": (200, 40, 52),
}

# Geometry of the untilted face, in pixels (x right, y down, the frame is [0, 64)).
CX, CY = 32.0, 29.0             # centre of the head
HEAD_RY = 18.0                  # half-height of the head (chin at y = 47)
HEAD_RX = (12.5, 15.0, 17.5)    # half-width: narrow, oval, chubby
JAW_TAPER = (0.22, 0.16, 0.06)  # how much narrower the jaw is than the temples
PIVOT = (32.0, 44.0)            # the head tilts about this point (near the chin)
EYE_DX, EYE_Y = 6.5, 28.5       # eyes at x = CX -/+ EYE_DX
EYE_RX = 3.6                    # half-width of an eye
EYE_RY = (1.5, 2.6, 3.6)        # half-height: narrow, normal, wide
PUPIL_R = (1.9, 2.0, 2.3)       # (clipped to the eye)
SMILE_BEND = (-3.4, 0.2, 3.4)   # mouth centre below its corners, px: frown, neutral, smile
MOUTH_Y, MOUTH_HW = 42.0, 7.0   # height of the mouth, half its width
SUPERSAMPLE = 4

# Layers bottom to top: the factors that shape the mask (head_tilt last; the
# shirt alone does not tilt), and the factor whose colour table paints it
# (None: a fixed colour).
_LAYERS = (
    ("back_hair", ("hair_style", "Chubby", "head_tilt"), "hair_color"),
    ("shirt", (), None),
    ("skin", ("Chubby", "head_tilt"), "Pale_Skin"),
    ("shade", ("Chubby", "head_tilt"), "Pale_Skin"),
    ("mouth", ("Smiling", "head_tilt"), "Pale_Skin"),
    ("white", ("Narrow_Eyes", "Smiling", "head_tilt"), None),
    ("pupil", ("Narrow_Eyes", "head_tilt"), None),
    ("front_hair", ("hair_style", "Chubby", "Mustache", "head_tilt"), "hair_color"),
    ("glasses", ("Eyeglasses", "Chubby", "head_tilt"), None),
    ("hat", ("Wearing_Hat", "Chubby", "head_tilt"), None),
)

DEFAULT_SIZES = {"train": 50_000, "val": 2_000, "test": 2_000}
BASE_SEED = 64_2018
_RENDER_CHUNK = 128


# --- implicit shapes: boolean "inside" tests on arrays of sample coordinates ---

def _ellipse(x, y, cx, cy, rx, ry):
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0


def _box(x, y, x0, x1, y0, y1):
    return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


def _ring(x, y, cx, cy, r, thickness):
    return np.abs(np.hypot(x - cx, y - cy) - r) <= thickness / 2


def _arc(x, y, cx, cy, half_width, bend, thickness):
    """A thick parabolic stroke: corners at (cx -/+ half_width, cy), centre at (cx, cy + bend)."""
    u = (x - cx) / half_width
    centre = cy + bend * (1.0 - u * u)
    slope = -2.0 * bend * u / half_width
    body = (np.abs(u) <= 1.0) & (np.abs(y - centre) <= thickness / 2 * np.sqrt(1.0 + slope * slope))
    caps = _ellipse(x, y, cx - half_width, cy, thickness / 2, thickness / 2)
    return body | caps | _ellipse(x, y, cx + half_width, cy, thickness / 2, thickness / 2)


def _mirror(x):
    """x reflected about the face's axis: shapes drawn at x > CX appear on both sides."""
    return CX + np.abs(x - CX)


# --- the parts of a face, in the untilted frame; w is the Chubby level ---

def _head(x, y, w):
    v = np.clip((y - CY) / HEAD_RY, 0.0, 1.0)
    rx = HEAD_RX[w] * (1.0 - JAW_TAPER[w] * v * v)
    return _ellipse(x, y, CX, CY, rx, HEAD_RY)


def _ears(x, y, w):
    return _ellipse(_mirror(x), y, CX + HEAD_RX[w] - 0.5, 30.0, 3.0, 4.6)


def _neck(x, y):
    return _box(x, y, CX - 5.5, CX + 5.5, CY + 8.0, 72.0)


def _shirt(x, y):
    return _ellipse(x, y, CX, 76.0, 33.0, 21.0) & ~_ellipse(x, y, CX, 55.0, 6.5, 4.0)


def _nose(x, y):
    return _ellipse(x, y, CX, 35.0, 2.4, 1.8)


def _inner_ears(x, y, w):
    return _ellipse(_mirror(x), y, CX + HEAD_RX[w] + 0.4, 30.0, 1.3, 2.7)


def _chin_shadow(x, y, w):
    """A crescent on the neck just below the jaw."""
    return _neck(x, y) & _head(x, y - 2.5, w) & ~_head(x, y, w)


def _eye_whites(x, y, e):
    return _ellipse(_mirror(x), y, CX + EYE_DX, EYE_Y, EYE_RX, EYE_RY[e])


def _pupils(x, y, e):
    return _ellipse(_mirror(x), y, CX + EYE_DX, EYE_Y + 0.3, PUPIL_R[e], PUPIL_R[e]) & _eye_whites(x, y, e)


def _eyebrows(x, y):
    return _arc(_mirror(x), y, CX + EYE_DX, 23.0, 4.3, -1.3, 2.3)


def _grin(x, y):
    """The open mouth of a grin, between a flat upper lip and a deep lower one."""
    u = (x - CX) / MOUTH_HW
    depth = np.clip(1.0 - u * u, 0.0, None)
    return (np.abs(u) <= 1.0) & (y >= MOUTH_Y - 1.5 + 0.8 * depth) & (y <= MOUTH_Y - 1.0 + 5.5 * depth)


def _mouth(x, y, s):
    if s == 3:
        return _grin(x, y)
    bend = SMILE_BEND[s]
    return _arc(x, y, CX, MOUTH_Y - bend / 2, MOUTH_HW - 1.0, bend, 2.4)


def _teeth(x, y, s):
    if s != 3:
        return np.zeros_like(x, dtype=bool)
    u = (x - CX) / MOUTH_HW
    return _grin(x, y) & (y <= MOUTH_Y + 0.4 + 0.8 * (1.0 - u * u)) & (np.abs(u) <= 0.8)


def _mustache(x, y, m):
    if m == 0:
        return np.zeros_like(x, dtype=bool)
    return _arc(x, y, CX, 39.4, 5.8, -1.6, 2.8)


def _back_hair(x, y, style, w):
    rx = HEAD_RX[w]
    if style == 1:  # bangs: a bob down to the jaw
        return _ellipse(x, y, CX, CY - 0.5, rx + 3.2, HEAD_RY + 2.0) & (y <= 38.0)
    if style == 3:  # long: down to the shoulders
        top = _ellipse(x, y, CX, CY, rx + 5.0, HEAD_RY + 2.5)
        fall = _ellipse(x, y, CX, 48.0, rx + 5.0, 12.0) | _box(x, y, CX - rx - 5.0, CX + rx + 5.0, CY, 48.0)
        return top | fall
    return np.zeros_like(x, dtype=bool)


def _front_hair(x, y, style, w):
    rx = HEAD_RX[w]
    if style == 1:  # a straight fringe above the eyebrows, sides over the ears
        cap = _ellipse(x, y, CX, CY - 0.5, rx + 2.0, HEAD_RY + 1.5)
        return cap & ((y <= 19.5) | ((np.abs(x - CX) >= rx - 2.2) & (y <= 36.0)))
    if style == 2:  # short, swept to one side, with sideburns
        u = (x - CX) / rx
        hairline = 15.5 + 2.5 * u + 11.0 * u**4
        return _ellipse(x, y, CX, CY - 0.3, rx + 1.5, HEAD_RY + 1.3) & (y <= hairline)
    if style == 3:  # long, parted in the middle, framing the face
        cap = _ellipse(x, y, CX, CY, rx + 2.0, HEAD_RY + 1.8)
        face = _ellipse(x, y, CX, CY + 6.0, rx - 1.2, HEAD_RY + 1.5)
        part = _box(x, y, CX - 0.6, CX + 0.6, 0.0, 16.5)
        return cap & ~face & ~part
    return np.zeros_like(x, dtype=bool)


def _glasses(x, y, g, w):
    if g == 0:
        return np.zeros_like(x, dtype=bool)
    mx = _mirror(x)
    rims = _ring(mx, y, CX + EYE_DX, EYE_Y, 4.7, 1.6)
    bridge = _box(x, y, CX - 2.0, CX + 2.0, EYE_Y - 1.6, EYE_Y - 0.2)
    arms = _box(mx, y, CX + EYE_DX + 5.2, CX + HEAD_RX[w] + 0.8, EYE_Y - 1.7, EYE_Y - 0.3)
    return rims | bridge | arms


def _hat(x, y, h, w):
    if h == 0:
        return np.zeros_like(x, dtype=bool)
    rx = HEAD_RX[w]
    dome = _ellipse(x, y, CX, 17.0, rx + 2.6, 13.0) & (y <= 17.0)
    band = _ellipse(x, y, CX, 16.0, rx + 3.4, 2.6) | _box(x, y, CX - rx - 2.6, CX + rx + 2.6, 14.0, 18.0)
    return dome | band | _ellipse(x, y, CX, 4.4, 2.7, 2.7)


def _layer_shape(name, x, y, levels):
    """Inside test of one layer at given factor levels (without head_tilt) on untilted coordinates."""
    if name == "back_hair":
        return _back_hair(x, y, *levels)
    if name == "shirt":
        return _shirt(x, y)
    if name == "skin":
        return _head(x, y, *levels) | _ears(x, y, *levels) | _neck(x, y)
    if name == "shade":
        return _nose(x, y) | _inner_ears(x, y, *levels) | _chin_shadow(x, y, *levels)
    if name == "mouth":
        return _mouth(x, y, *levels)
    if name == "white":
        return _eye_whites(x, y, levels[0]) | _teeth(x, y, levels[1])
    if name == "pupil":
        return _pupils(x, y, *levels)
    if name == "front_hair":
        style, w, m = levels
        return _front_hair(x, y, style, w) | _eyebrows(x, y) | _mustache(x, y, m)
    if name == "glasses":
        return _glasses(x, y, *levels)
    if name == "hat":
        return _hat(x, y, *levels)
    raise KeyError(name)


# --- the mask tables ---

@functools.lru_cache(maxsize=len(TILT_DEGREES))
def _sample_grid(tilt: float) -> tuple[np.ndarray, np.ndarray]:
    """Untilted coordinates of the 4x4 sub-samples of every pixel when the head is tilted by ``tilt`` degrees."""
    s = (np.arange(IMAGE_SIZE * SUPERSAMPLE, dtype=np.float32) + 0.5) / SUPERSAMPLE
    y, x = np.meshgrid(s, s, indexing="ij")
    c, sn = math.cos(math.radians(tilt)), math.sin(math.radians(tilt))
    dx, dy = x - PIVOT[0], y - PIVOT[1]
    return PIVOT[0] + c * dx - sn * dy, PIVOT[1] + sn * dx + c * dy


def _coverage(inside: np.ndarray) -> np.ndarray:
    """Fraction of the 4x4 sub-samples inside, per pixel: float32 (64, 64)."""
    k = SUPERSAMPLE
    return inside.reshape(IMAGE_SIZE, k, IMAGE_SIZE, k).mean(axis=(1, 3), dtype=np.float32)


def _sizes(factors: tuple) -> tuple:
    return tuple(FACTOR_SIZES[FACTOR_NAMES.index(f)] for f in factors)


def _layer_table(name: str, factors: tuple) -> np.ndarray:
    """Coverage masks of one layer for every level combination: float32 (*sizes, 64, 64)."""
    sizes = _sizes(factors)
    table = np.empty(sizes + (IMAGE_SIZE, IMAGE_SIZE), np.float32)
    for levels in itertools.product(*map(range, sizes)):
        tilt = TILT_DEGREES[levels[-1]] if factors else 0.0
        x, y = _sample_grid(tilt)
        table[levels] = _coverage(_layer_shape(name, x, y, levels[:-1]))
    return table


def _skin_table() -> np.ndarray:
    """The skin layer: head and ears, and the neck only where the (untilted) shirt does not cover it."""
    table = _layer_table("skin", ("Chubby", "head_tilt"))
    return table * (1.0 - _layer_table("shirt", ()))  # the neck is below the shirt; the head is above it


class Layer(NamedTuple):
    name: str
    factors: tuple       # the factors that select the mask, in the order of the table's axes
    color_factor: str | None
    masks: np.ndarray    # float32 (M, h, w): coverage in [0, 1], cropped to the bounding box of all M
    top_left: tuple      # (row, column) of the crop in the frame


@functools.lru_cache(maxsize=1)
def layer_masks() -> tuple:
    """The ten layers, bottom to top, with their masks; drawn once per process and read-only."""
    layers = []
    for name, factors, color_factor in _LAYERS:
        table = _skin_table() if name == "skin" else _layer_table(name, factors)
        flat = table.reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
        rows, cols = np.nonzero(flat.max(axis=0))
        crop = np.ascontiguousarray(flat[:, rows.min():rows.max() + 1, cols.min():cols.max() + 1])
        crop.setflags(write=False)
        layers.append(Layer(name, factors, color_factor, crop, (int(rows.min()), int(cols.min()))))
    return tuple(layers)


def _mask_index(f: np.ndarray, factors: tuple) -> np.ndarray:
    """Row of each face in a layer's flat mask table."""
    if not factors:
        return np.zeros(len(f), np.int64)
    return np.ravel_multi_index([_column(f, k) for k in factors], _sizes(factors))


# --- the public API, as in shapes.py ---

def _check_factors(factors) -> np.ndarray:
    return factors_.check(factors, FACTOR_NAMES, FACTOR_SIZES)


def _column(f: np.ndarray, name: str) -> np.ndarray:
    return f[:, FACTOR_NAMES.index(name)]


def _layer_colors(f: np.ndarray, name: str, color_factor: str | None) -> np.ndarray:
    """RGB of one layer for each face: float32 (N, 3)."""
    if color_factor is None:
        return np.broadcast_to(np.asarray(FIXED_COLORS[name], np.float32), (len(f), 3))
    if color_factor == "hair_color":
        return HAIR_COLORS[_column(f, color_factor)]
    skin = _column(f, color_factor)
    return {"skin": SKIN_COLORS[skin], "shade": SKIN_COLORS[skin] * SKIN_SHADE, "mouth": MOUTH_COLORS[skin]}[name]


def _render_chunk(f: np.ndarray) -> np.ndarray:
    """float32 (n, 3, 64, 64) in [0, 255]: the background, then every layer blended on top."""
    out = np.empty((len(f), 3, IMAGE_SIZE, IMAGE_SIZE), np.float32)
    out[:] = BACKGROUND_COLORS[_column(f, "background")][:, :, None, None]
    for layer in layer_masks():
        alpha = layer.masks[_mask_index(f, layer.factors)][:, None]  # (n, 1, h, w)
        (y0, x0), (h, w) = layer.top_left, layer.masks.shape[1:]
        region = out[:, :, y0:y0 + h, x0:x0 + w]  # a view: blending in place updates out
        delta = _layer_colors(f, layer.name, layer.color_factor)[:, :, None, None] - region
        delta *= alpha
        region += delta
    return out


def render(factors) -> np.ndarray:
    """Faces for integer factors (N, 11) (or one (11,) vector) -> uint8 (N, 3, 64, 64); deterministic."""
    f = _check_factors(factors)
    out = np.empty((len(f), 3, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    for start in range(0, len(f), _RENDER_CHUNK):
        chunk = _render_chunk(f[start:start + _RENDER_CHUNK])
        np.add(chunk, 0.5, out=chunk)
        out[start:start + len(chunk)] = chunk  # truncation of x + 0.5: round half up
    return out


DATASET = factors_.FactorDataset("faces", FACTOR_NAMES, FACTOR_SIZES, render, base_seed=BASE_SEED,
                                 default_sizes=DEFAULT_SIZES, levels=FACTOR_LEVELS, doc=__doc__)
# the interface every dataset with factors has (imagedata/factors.py)
sample_factors, flat_index, split_of = DATASET.sample_factors, DATASET.flat_index, DATASET.split_of
split_factors, make_split, main = DATASET.split_factors, DATASET.make_split, DATASET.main


if __name__ == "__main__":
    main()
