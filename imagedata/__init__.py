"""Image datasets of bvaex, all delivered as uint8 arrays (N, 3, 64, 64), CHW, RGB.

    faces    procedural cartoon faces with eleven known factors, no download (``faces.py``)
    folder   any folder of JPEG/PNG/WebP images, searched recursively, hashed splits (``folder.py``)
    shapes   procedural colour sprites with six known factors, no download (``shapes.py``)
    celeba   CelebA with its official splits, decoded once into the cache (``celeba.py``)

Generated datasets (with factors) render on the fly; decoded ones go through ``cache.py``. What a
run reads is a ``DataOptions`` (``options.py``); ``load(options, split)`` delivers it.
Importing this package does not import JAX: the decoding worker processes import it too.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping

import numpy as np

from system.errors import UserError

from . import celeba, folder
from .decoding import DEFAULT_CROP, IMAGE_SIZE, SQUARE
from .options import AUTO_CROP, SPLITS, DataOptions, parse_crop, resolve_crop


class _Modules(Mapping):
    """{name: the submodule of that name}, imported when first looked up (so that
    ``python -m imagedata.faces`` runs a module the package has not imported already)."""

    def __init__(self, *names):
        self._names = names

    def __getitem__(self, name):
        if name not in self._names:
            raise KeyError(name)
        return importlib.import_module(f"{__name__}.{name}")

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)


GENERATED = _Modules("faces", "shapes")  # datasets rendered from known factors
DATASETS = tuple(GENERATED) + ("celeba", "folder")
DECODED = ("celeba", "folder")  # datasets decoded from image files
FILE_OPTIONS = {"data_dir": DECODED, "crop": DECODED, "cache_dir": DECODED, "split_file": ("folder",)}  # who reads each


def load_with_info(options: DataOptions, split: str, *, image_size=IMAGE_SIZE, num_workers=None,
                   progress=True) -> tuple[np.ndarray, dict]:
    """(uint8 images (N, 3, image_size, image_size), {"cache", "built", "skipped"}) of one split.

    Generated datasets make ``options.limit`` images; decoded ones take the first ``limit`` of the
    split. Raises UserError with one sentence for any data problem.
    """
    dataset, limit = options.dataset, options.limit
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}.")
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}.")
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 1):
        raise UserError(f"--limit must be a positive number of images, not {limit!r}.")
    if not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise UserError(f"the image size must be a positive number of pixels, not {image_size!r}.")
    limit, image_size = (None if limit is None else int(limit)), int(image_size)
    if dataset in GENERATED:
        if image_size != IMAGE_SIZE:
            raise UserError(f"the {dataset} dataset is {IMAGE_SIZE}x{IMAGE_SIZE} only, not {image_size}.")
        images, _ = GENERATED[dataset].make_split(split, limit)
        return images, {"cache": None, "built": True, "skipped": 0}
    where = dict(data_dir=options.data_dir, crop=options.crop, image_size=image_size, limit=limit,
                 cache_dir=options.cache_dir, num_workers=num_workers, progress=progress)
    if dataset == "folder":
        return folder.load_split(split, split_file=options.split_file, **where)
    if where["crop"] == SQUARE:
        where["crop"] = min(celeba.CELEBA_FRAME)
    return celeba.load_split(split, **where)


def load(options: DataOptions, split: str, **kwargs) -> np.ndarray:
    """One split as uint8 (N, 3, H, W); the keyword arguments of ``load_with_info``."""
    return load_with_info(options, split, **kwargs)[0]
