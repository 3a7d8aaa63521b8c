"""What the embedded datasets with known factors share (``shapes.py``, ``faces.py``).

Uniform, independent factor draws; a fixed hash of each factor combination that gives it to
train (90 %), val (5 %) or test (5 %), so held-out images are never training images; one seeded
sequence per split, of which a smaller ``n`` is a prefix; and the sample-grid command. Each
dataset module defines one ``FactorDataset`` and exports its methods.
"""
from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from system.arguments import positive_int

from .options import SPLITS

HASH_BUCKETS = 20  # bucket 0 -> test, 1 -> val, 2..19 -> train
DRAW_BLOCK = 4096


def check(factors, names, sizes) -> np.ndarray:
    """``factors`` as int64 (N, K) (a single (K,) vector too); ValueError naming a factor out of range."""
    f = np.asarray(factors)
    if f.ndim == 1 and f.shape[0] == len(sizes):
        f = f[None]
    if f.ndim != 2 or f.shape[1] != len(sizes):
        raise ValueError(f"factors must have shape (N, {len(sizes)}), got {f.shape}")
    if f.size and not np.issubdtype(f.dtype, np.integer) and not np.array_equal(f, np.round(f)):
        raise ValueError("factors must be integer indices")
    f = f.astype(np.int64)
    bad = (f < 0) | (f >= np.asarray(sizes))
    if bad.any():
        col = int(np.argwhere(bad)[0, 1])
        raise ValueError(f"factor {names[col]} must lie in [0, {sizes[col]})")
    return f


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


class FactorDataset:
    """An embedded dataset rendered from known factors, with splits fixed by each combination.

    ``names``/``sizes``: the factors and their numbers of levels; ``render``: int64 factors (N, K)
    -> uint8 images (N, 3, 64, 64); ``base_seed``, ``default_sizes`` ({split: images}): the split
    sequences; ``levels``: {factor: level names} for the sample-grid command's printout.
    """

    def __init__(self, noun, names, sizes, render, *, base_seed, default_sizes, levels=None, doc=None):
        self.noun, self.names, self.sizes, self.render = noun, tuple(names), tuple(sizes), render
        self.base_seed, self.default_sizes, self.levels, self.doc = base_seed, default_sizes, levels or {}, doc

    def sample_factors(self, rng, n) -> np.ndarray:
        """n uniform factor vectors, int64 (n, K)."""
        return sample(self.sizes, rng, n)

    def flat_index(self, factors) -> np.ndarray:
        """Each combination's position in the product grid (row-major), int64 (N,)."""
        f = check(factors, self.names, self.sizes)
        return np.ravel_multi_index(tuple(f.T), self.sizes).astype(np.int64)

    def split_of(self, factors) -> np.ndarray:
        """Which split owns each combination: 0 train, 1 val, 2 test."""
        return split_of_index(self.flat_index(factors))

    def split_factors(self, split: str, n: int | None = None) -> np.ndarray:
        """The first ``n`` factor vectors of ``split`` (its default size when None): uniform draws
        seeded per split, kept when ``split_of`` gives them to ``split``."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        n = self.default_sizes[split] if n is None else int(n)
        if n < 0:
            raise ValueError("n must be non-negative")
        rng = np.random.default_rng(np.random.SeedSequence([self.base_seed, SPLITS.index(split)]))
        parts, have = [], 0
        while have < n:
            block = self.sample_factors(rng, DRAW_BLOCK)
            parts.append(block[self.split_of(block) == SPLITS.index(split)])
            have += len(parts[-1])
        return np.concatenate(parts)[:n] if parts else np.zeros((0, len(self.sizes)), np.int64)

    def make_split(self, split: str, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 images (N, 3, 64, 64), int64 factors (N, K)) of ``split``."""
        factors = self.split_factors(split, n)
        return self.render(factors), factors

    def main(self, argv=None) -> None:
        """The command of a dataset module: write a PNG grid of ``--n`` images of a split."""
        noun = self.noun
        parser = argparse.ArgumentParser(description=self.doc, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--split", choices=SPLITS, default="train", help="which split to draw from (default: train)")
        parser.add_argument("--n", type=positive_int, default=32, help=f"number of {noun} to draw (default: 32)")
        parser.add_argument("--out", default=f"{noun}.png", help=f"where to write the PNG grid (default: {noun}.png)")
        args = parser.parse_args(argv)
        images, factors = self.make_split(args.split, args.n)
        Image.fromarray(grid(images)).save(args.out)
        print(f"wrote {len(images)} {args.split} {noun} to {args.out}")
        for row in factors[:4]:
            print("  " + ", ".join(f"{k}={self.levels[k][v] if k in self.levels else v}"
                                   for k, v in zip(self.names, row.tolist())))
