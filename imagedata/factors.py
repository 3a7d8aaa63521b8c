"""What the embedded datasets with known factors share (``shapes.py``, ``faces.py``).

Uniform, independent factor draws; a fixed hash of each factor combination that gives it to
train (90 %), val (5 %) or test (5 %), so held-out images are never training images; one seeded
sequence per split, of which a smaller ``n`` is a prefix; and the sample-grid command.
"""
from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

SPLITS = ("train", "val", "test")
HASH_BUCKETS = 20  # bucket 0 -> test, 1 -> val, 2..19 -> train
DRAW_BLOCK = 4096


def sample(sizes, rng: np.random.Generator, n: int) -> np.ndarray:
    """n factor vectors, factor k uniform on 0 .. sizes[k] − 1: int64 (n, K)."""
    if n < 0:
        raise ValueError("n must be non-negative")
    return rng.integers(0, np.asarray(sizes), size=(int(n), len(sizes)), dtype=np.int64)


def split_of_index(flat) -> np.ndarray:
    """The split of each combination index: 0 train, 1 val, 2 test (splitmix64's finaliser, mod 20)."""
    x = np.asarray(flat).astype(np.uint64)
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    bucket = (x % np.uint64(HASH_BUCKETS)).astype(np.int64)
    return np.where(bucket == 0, 2, np.where(bucket == 1, 1, 0))


def split_sequence(dataset, split: str, n: int | None) -> np.ndarray:
    """The first ``n`` factor vectors of ``split``: uniform draws seeded per split, kept when
    ``dataset.split_of`` gives them to ``split``. ``dataset``: the module (its ``BASE_SEED``,
    ``DEFAULT_SIZES``, ``FACTOR_SIZES``, ``sample_factors`` and ``split_of``)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    n = dataset.DEFAULT_SIZES[split] if n is None else int(n)
    if n < 0:
        raise ValueError("n must be non-negative")
    rng = np.random.default_rng(np.random.SeedSequence([dataset.BASE_SEED, SPLITS.index(split)]))
    parts, have = [], 0
    while have < n:
        block = dataset.sample_factors(rng, DRAW_BLOCK)
        parts.append(block[dataset.split_of(block) == SPLITS.index(split)])
        have += len(parts[-1])
    return np.concatenate(parts)[:n] if parts else np.zeros((0, len(dataset.FACTOR_SIZES)), np.int64)


def grid(images: np.ndarray, cols: int = 8) -> np.ndarray:
    """uint8 images (N, 3, S, S) as one HWC picture, ``cols`` a row, on grey."""
    n, size = len(images), images.shape[-1]
    rows = max(1, -(-n // cols))
    out = np.full((rows * (size + 2), cols * (size + 2), 3), 60, dtype=np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (size + 2) + 1:r * (size + 2) + 1 + size, c * (size + 2) + 1:c * (size + 2) + 1 + size] = \
            im.transpose(1, 2, 0)
    return out


def sample_grid_main(dataset, noun: str, argv=None) -> None:
    """The command of a dataset module: write a PNG grid of ``--n`` images of a split."""
    parser = argparse.ArgumentParser(description=dataset.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=SPLITS, default="train", help="which split to draw from (default: train)")
    parser.add_argument("--n", type=int, default=32, help=f"number of {noun} to draw (default: 32)")
    parser.add_argument("--out", default=f"{noun}.png", help=f"where to write the PNG grid (default: {noun}.png)")
    args = parser.parse_args(argv)
    images, factors = dataset.make_split(args.split, args.n)
    Image.fromarray(grid(images)).save(args.out)
    print(f"wrote {len(images)} {args.split} {noun} to {args.out}")
    levels = getattr(dataset, "FACTOR_LEVELS", {})
    for row in factors[:4]:
        print("  " + ", ".join(f"{k}={levels[k][v] if k in levels else v}"
                               for k, v in zip(dataset.FACTOR_NAMES, row.tolist())))
