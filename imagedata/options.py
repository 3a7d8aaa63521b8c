"""Which images a run reads: the data options, defined once, as a checkpoint records them.

``DataOptions`` names a dataset and how its images are found, cropped, cached and limited;
``imagedata.load(options, split)`` delivers them. The crop is resolved here, once: "auto" becomes
the dataset's own default (148 px for CelebA, the largest centred square for a folder).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields

from system.errors import UserError

from .decoding import DEFAULT_CROP, SQUARE

SPLITS = ("train", "val", "test")
AUTO_CROP = "auto"  # each dataset's own default crop
DEFAULT_CROPS = {"celeba": DEFAULT_CROP, "folder": SQUARE}


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


def resolve_crop(dataset, crop):
    """``crop`` with "auto" replaced by the dataset's default (148 for CelebA, "square" for a folder)."""
    return DEFAULT_CROPS.get(dataset, DEFAULT_CROP) if crop == AUTO_CROP else crop


def _absolute(path) -> str | None:
    return None if path is None else os.path.abspath(os.path.expanduser(str(path)))


@dataclass(frozen=True)
class DataOptions:
    """The images of a run. ``dataset`` None: a parameter file that records none."""
    dataset: str | None = "celeba"
    data_dir: str | None = None     # celeba: searched when None (``imagedata/celeba.py``)
    crop: int | str | None = AUTO_CROP
    cache_dir: str | None = None    # where decoded caches go (default ./cache)
    limit: int | None = None        # at most the first N images of each split
    split_file: str | None = None   # --dataset folder only

    def __post_init__(self):
        try:
            crop = resolve_crop(self.dataset, parse_crop(self.crop))
        except ValueError as e:
            raise UserError(f"{e}.") from None
        object.__setattr__(self, "crop", crop)
        for name in ("data_dir", "split_file", "cache_dir"):  # recorded absolute: a run resumed elsewhere
            object.__setattr__(self, name, _absolute(getattr(self, name)))  # reads the same files

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def names(cls) -> tuple:
        return tuple(f.name for f in fields(cls))
