"""Image datasets of bvaex, all delivered as uint8 arrays (N, 3, 64, 64), CHW, RGB.

    faces    procedural cartoon faces with eleven known factors, no download (``faces.py``)
    folder   any folder of JPEG/PNG/WebP images, searched recursively, hashed splits (``folder.py``)
    shapes   procedural colour sprites with six known factors, no download (``shapes.py``)
    celeba   CelebA with its official splits, decoded once into the cache (``celeba.py``)

Generated datasets (with factors) render on the fly; decoded ones go through ``cache.py``.
Importing this package does not import JAX: the decoding worker processes import it too.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping

import numpy as np

from system.errors import UserError

from . import celeba, folder
from .decoding import DEFAULT_CROP, IMAGE_SIZE, SQUARE


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


SPLITS = ("train", "val", "test")
GENERATED = _Modules("faces", "shapes")  # datasets rendered from known factors
DATASETS = tuple(GENERATED) + ("celeba", "folder")
OPTION_KEYS = ("data_dir", "crop", "image_size", "limit", "cache_dir", "num_workers", "progress", "split_file")
AUTO_CROP = "auto"  # each dataset's own default crop
DEFAULT_CROPS = {"celeba": DEFAULT_CROP, "folder": SQUARE}


def resolve_crop(dataset, crop):
    """``crop`` with "auto" replaced by the dataset's default (148 for CelebA, "square" for a folder)."""
    return DEFAULT_CROPS.get(dataset, DEFAULT_CROP) if crop == AUTO_CROP else crop


def parse_crop(value) -> int | str | None:
    """A crop value: a positive whole number of pixels, 'square' (the largest centred square), 'auto'
    (the dataset's default), or None / 'none' for no crop; ValueError otherwise."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "")):
        return None
    if isinstance(value, str) and value.strip().lower() in (SQUARE, AUTO_CROP):
        return value.strip().lower()
    try:
        crop = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"--crop must be a number of pixels, 'square', 'auto' or 'none', not {value!r}") from None
    if crop < 1:
        raise ValueError(f"--crop must be a positive number of pixels or 'none', not {value!r}")
    return crop


def load(dataset, split, *, data_dir=None, crop=AUTO_CROP, image_size=IMAGE_SIZE, limit=None,
         cache_dir=None, num_workers=None, progress=True, split_file=None) -> tuple[np.ndarray, dict]:
    """(uint8 images (N, 3, image_size, image_size), {"cache", "built", "skipped"}) of one split.

    Generated datasets make ``limit`` images; decoded ones take the first ``limit`` of the split.
    Raises UserError with one sentence for any data problem.
    """
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
        module = GENERATED[dataset]
        if image_size != module.IMAGE_SIZE:
            raise UserError(f"the {dataset} dataset is {module.IMAGE_SIZE}x{module.IMAGE_SIZE} only, not {image_size}.")
        images, _ = module.make_split(split, limit)
        return images, {"cache": None, "built": True, "skipped": 0}
    try:
        crop = resolve_crop(dataset, parse_crop(crop))
    except ValueError as e:
        raise UserError(f"{e}.") from None
    if dataset == "folder":
        return folder.load(split, data_dir=data_dir, crop=crop, image_size=image_size, limit=limit,
                           cache_dir=cache_dir, num_workers=num_workers, progress=progress, split_file=split_file)
    if crop == SQUARE:
        crop = min(celeba.CELEBA_FRAME)
    return celeba.load(split, data_dir=data_dir, crop=crop, image_size=image_size, limit=limit,
                       cache_dir=cache_dir, num_workers=num_workers, progress=progress)


def load_split(dataset: str, split: str, **options) -> np.ndarray:
    """One split as uint8 (N, 3, H, W); the options of ``load``."""
    return load(dataset, split, **options)[0]


def load_from_options(options: dict, split: str, **overrides) -> np.ndarray:
    """``load_split`` with a dict of data options (as recorded in a checkpoint); overrides win."""
    merged = dict(options, **overrides)
    if "dataset" not in merged:
        raise UserError("the stored data options name no dataset.")
    return load_split(merged["dataset"], split, **{k: merged[k] for k in OPTION_KEYS if k in merged})
