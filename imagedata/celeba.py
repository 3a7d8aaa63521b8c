"""CelebA on disk: finding it in the layouts people have, its official splits, and its uint8 cache.

Download the "Align&Cropped Images" (``img_align_celeba.zip``, 202,599 JPEGs of 178×218 named
000001.jpg ... 202599.jpg) and ``list_eval_partition.txt`` and put them in one folder. Accepted
layouts::

    data/celeba/img_align_celeba/000001.jpg ...       (unzipped)
    data/celeba/img_align_celeba.zip                  (read in place)
    data/celeba/img_align_celeba/img_align_celeba/... (Kaggle, with list_eval_partition.csv)
    data/celeba/list_eval_partition.txt               (lines "000001.jpg 0")

Partition codes: 0 train, 1 val, 2 test. Without a partition file the official index ranges are
used and a note says so. Preprocessing: a centred ``crop`` × ``crop`` square (default 148 px;
None resizes the whole frame, as the seed did), LANCZOS resize to 64×64, RGB, CHW uint8,
decoded once into the cache of ``imagedata/cache.py``.
"""
from __future__ import annotations

import csv
import glob
import io
import os
import re
import sys
import zipfile
from dataclasses import dataclass

from system.errors import UserError

from . import cache, decoding

DATA_DIR_ENV = "BVAEX_DATA_DIR"
DEFAULT_DATA_DIR = os.path.join("data", "celeba")
KAGGLE_INPUT = "/kaggle/input"  # where Kaggle mounts a notebook's datasets, read-only
KAGGLE_DATASET = "jessicali9530/celeba-dataset"  # Kaggle's CelebA, mounted as /kaggle/input/celeba-dataset/
CELEBA_NUM_IMAGES = 202_599
CELEBA_FRAME = (178, 218)  # width, height of every aligned CelebA image
OFFICIAL_RANGES = {
    "train": (1, 162_770),
    "val": (162_771, 182_637),
    "test": (182_638, 202_599),
}
PARTITION_CODES = {"0": "train", "1": "val", "2": "test"}
PARTITION_FILES = ("list_eval_partition.txt", "list_eval_partition.csv")

_IMAGE_NAME = re.compile(r"^\d{6}\.jpg$")
_OFFICIAL_NOTE_SHOWN: set[str] = set()


def _missing_message(where: str, searched: bool = False) -> str:
    if searched:
        where = (f"{where}, ${DATA_DIR_ENV} (unset) or a folder of {KAGGLE_INPUT}/ (on Kaggle add the "
                 f"dataset {KAGGLE_DATASET} to the notebook)")
    return (
        f"CelebA was not found in {where}: download the \"Align&Cropped Images\" file "
        "img_align_celeba.zip and list_eval_partition.txt from "
        "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html and put both in that folder "
        "(the zip may stay zipped or be unzipped into img_align_celeba/), or point "
        f"--data-dir or ${DATA_DIR_ENV} at the folder that holds them, or run on the "
        "embedded faces instead with --dataset faces."
    )


# --------------------------------------------------------------------------- #
# Finding CelebA on disk
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Source:
    """Where the CelebA images of one data folder live."""

    root: str  # the data folder
    layout: str  # "folder", "zip", "kaggle" or "flat"
    kind: str  # "folder" (JPEG files) or "zip" (members of a zip file)
    path: str  # the image folder or the zip file
    partition: str | None  # the partition file, or None for the official ranges


def _searching(data_dir) -> bool:
    """True when neither the argument nor $BVAEX_DATA_DIR names the data folder."""
    return (data_dir is None or str(data_dir) == "") and not os.environ.get(DATA_DIR_ENV)


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> str:
    """The data folder: the argument, else $BVAEX_DATA_DIR, else ./data/celeba when it exists, else
    the first folder of /kaggle/input/ (or one level deeper) holding CelebA, else ./data/celeba."""
    if not _searching(data_dir):
        return os.path.abspath(os.path.expanduser(str(data_dir or os.environ[DATA_DIR_ENV])))
    default = os.path.abspath(DEFAULT_DATA_DIR)
    if os.path.exists(default):
        return default
    return next((path for path in kaggle_candidates() if holds_celeba(path)), default)


def kaggle_candidates() -> list[str]:
    """The folders /kaggle/input/*/ and /kaggle/input/*/*/, sorted (none off Kaggle)."""
    found = []
    for pattern in ("*", os.path.join("*", "*")):
        found += sorted(p for p in glob.glob(os.path.join(KAGGLE_INPUT, pattern)) if os.path.isdir(p))
    return found


def holds_celeba(folder: str) -> bool:
    """Whether ``folder`` has a CelebA layout (checked by name only, nothing listed)."""
    return (os.path.isdir(os.path.join(folder, "img_align_celeba"))
            or os.path.isfile(os.path.join(folder, "img_align_celeba.zip")))


def _has_images(folder: str) -> bool:
    try:
        with os.scandir(folder) as it:
            return any(_IMAGE_NAME.match(e.name) for e in it)
    except OSError as e:
        raise UserError(f"cannot read the folder {folder} ({e.strerror or e}).") from None


def _find_partition(*folders: str) -> str | None:
    for folder in folders:
        for sub in ("", "Eval"):
            for name in PARTITION_FILES:
                path = os.path.join(folder, sub, name)
                if os.path.isfile(path):
                    return path
    return None


def find_source(data_dir: str | os.PathLike | None = None) -> Source:
    """Detect which CelebA layout a data folder holds (without listing it all)."""
    root = resolve_data_dir(data_dir)
    if os.path.isfile(root) and root.lower().endswith(".zip"):
        folder = os.path.dirname(root)
        return Source(folder, "zip", "zip", root, _find_partition(folder))
    if not os.path.isdir(root):
        raise UserError(_missing_message(root, _searching(data_dir)))
    kaggle = os.path.join(root, "img_align_celeba", "img_align_celeba")
    folder = os.path.join(root, "img_align_celeba")
    zipped = os.path.join(root, "img_align_celeba.zip")
    empty = []
    for layout, path in (("kaggle", kaggle), ("folder", folder)):
        if os.path.isdir(path):
            if _has_images(path):
                return Source(root, layout, "folder", path, _find_partition(root))
            empty.append(path)
    if os.path.isfile(zipped):
        return Source(root, "zip", "zip", zipped, _find_partition(root))
    if _has_images(root):
        return Source(root, "flat", "folder", root, _find_partition(root, os.path.dirname(root)))
    if empty:
        raise UserError(
            f"the folder {empty[-1]} holds no CelebA images (JPEG files named 000001.jpg "
            f"to 202599.jpg); unzip img_align_celeba.zip there, or put the zip itself in "
            f"{root}, or run on the embedded faces with --dataset faces."
        )
    raise UserError(_missing_message(root, _searching(data_dir)))


def list_images(source: Source) -> dict[str, str]:
    """Map image name (e.g. "000001.jpg") to its file name or zip member."""
    images: dict[str, str] = {}
    if source.kind == "zip":
        try:
            with zipfile.ZipFile(source.path) as zf:
                for info in zf.infolist():
                    if info.is_dir() or "__MACOSX" in info.filename:
                        continue
                    name = info.filename.rsplit("/", 1)[-1]
                    if _IMAGE_NAME.match(name):
                        if name in images:  # which copy is the image? refuse rather than guess
                            raise UserError(f"the zip file {source.path} holds {name} twice ({images[name]} and "
                                            f"{info.filename}); download img_align_celeba.zip again.")
                        images[name] = info.filename
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise UserError(f"cannot read the zip file {source.path} ({e}); download it again.") from None
    else:
        try:
            with os.scandir(source.path) as it:
                for entry in it:
                    if _IMAGE_NAME.match(entry.name) and entry.is_file():  # never a FIFO or a device
                        images[entry.name] = entry.name
        except OSError as e:
            raise UserError(f"cannot read the folder {source.path} ({e.strerror or e}).") from None
    if not images:
        raise UserError(
            f"{source.path} holds no CelebA images (JPEG files named 000001.jpg to 202599.jpg); "
            "download img_align_celeba.zip again or run on the embedded faces with --dataset faces."
        )
    return images


def read_partition(path: str) -> dict[str, str]:
    """Parse list_eval_partition.txt ("000001.jpg 0") or .csv ("image_id,partition")."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read the partition file {path} ({e}).") from None
    if path.lower().endswith(".csv"):
        rows = list(csv.reader(io.StringIO(text)))
        header = [c.strip() for c in rows[0]] if rows else []
        if header != ["image_id", "partition"]:
            raise UserError(
                f"the partition file {path} does not start with the header 'image_id,partition' "
                "of the Kaggle list_eval_partition.csv."
            )
        entries = [(i, row) for i, row in enumerate(rows[1:], start=2) if any(c.strip() for c in row)]
        example = "000001.jpg,0"
    else:
        entries = [(i, line.split()) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]
        example = "000001.jpg 0"
    partition: dict[str, str] = {}
    for lineno, fields in entries:
        fields = [c.strip() for c in fields]
        if len(fields) != 2 or not _IMAGE_NAME.match(fields[0]) or fields[1] not in PARTITION_CODES:
            shown = " ".join(fields)[:60]
            raise UserError(
                f"line {lineno} of the partition file {path} is malformed ('{shown}'); every line "
                f"must look like '{example}' with 0 (train), 1 (val) or 2 (test)."
            )
        if fields[0] in partition:
            raise UserError(f"the partition file {path} lists {fields[0]} twice (line {lineno}).")
        partition[fields[0]] = PARTITION_CODES[fields[1]]
    if not partition:
        raise UserError(f"the partition file {path} is empty; download list_eval_partition.txt again.")
    return partition


def official_split(name_or_index: str | int) -> str | None:
    """The split of a CelebA image by the official index ranges (None if outside)."""
    index = int(str(name_or_index)[:6]) if isinstance(name_or_index, str) else int(name_or_index)
    for split, (lo, hi) in OFFICIAL_RANGES.items():
        if lo <= index <= hi:
            return split
    return None


def _note_official_ranges(source: Source) -> None:
    if source.partition is None and source.root not in _OFFICIAL_NOTE_SHOWN:
        _OFFICIAL_NOTE_SHOWN.add(source.root)
        print(
            f"note: no list_eval_partition.txt or .csv in {source.root}; using the official "
            "CelebA index ranges (train 1-162,770, val 162,771-182,637, test 182,638-202,599).",
            file=sys.stderr,
        )


def split_members(source: Source, split: str, limit: int | None = None) -> list[tuple[str, str]]:
    """Sorted (name, member) pairs of one split, checked against the partition file."""
    images = list_images(source)
    if source.partition is not None:
        partition = read_partition(source.partition)
        missing = sorted(set(partition) - set(images))
        if missing:
            raise UserError(
                f"the partition file {source.partition} lists {len(missing)} image(s) that are not in "
                f"{source.path} (for example {missing[0]}), so it does not match the images; use the "
                "list_eval_partition file that came with this copy of CelebA."
            )
        names = sorted(n for n, s in partition.items() if s == split)
    else:
        names = sorted(n for n in images if official_split(n) == split)
    if limit is not None:
        names = names[:limit]
    if not names:
        listed = f"the partition file {source.partition}" if source.partition is not None else "CelebA's official split"
        raise UserError(f"the {split} split of CelebA in {source.path} has no images ({listed} puts none of its "
                        f"{len(images):,} there); leave that split out (train.py --val-images 0, load_data.py "
                        f"--splits, the other scripts --split).")
    return [(n, images[n]) for n in names]


def source_fingerprint(source: Source) -> str:
    """``cache.fingerprint`` of the image files (a zip: its size and time) and the partition file."""
    if source.kind == "zip":
        try:
            st = os.stat(source.path)
        except OSError as e:
            raise UserError(f"cannot read the zip file {source.path} ({e.strerror or e}).") from None
        entries = [(os.path.basename(source.path), st.st_size, st.st_mtime_ns)]
    else:
        entries = cache.file_entries(source.path, _IMAGE_NAME.match)
    return cache.fingerprint(entries, source.partition)


def cache_stem(split, crop, image_size, limit) -> str:
    """The file name (without extension) of one split's cache: options that change the pixels are in it."""
    crop_tag = "nocrop" if crop is None else f"crop{crop}"
    return f"celeba_{split}_{crop_tag}_{image_size}px" + ("" if limit is None else f"_first{limit}")


def split_cache_files(split, *, crop=decoding.DEFAULT_CROP, image_size=decoding.IMAGE_SIZE, limit=None, cache_dir=None):
    """(array .npy path, manifest .json path) of one CelebA split's cache."""
    return cache.cache_paths(cache_stem(split, crop, image_size, limit), cache_dir)


def load_split(split, *, data_dir=None, crop=decoding.DEFAULT_CROP, image_size=decoding.IMAGE_SIZE, limit=None,
         cache_dir=None, num_workers=None, progress=True):
    """(uint8 images (N, 3, image_size, image_size), cache info) of one CelebA split."""
    if crop is not None and crop > min(CELEBA_FRAME):
        raise UserError(f"--crop {crop} is larger than the {CELEBA_FRAME[0]} px width of CelebA images; "
                        f"use at most {min(CELEBA_FRAME)} or 'none'.")
    source = find_source(data_dir)
    _note_official_ranges(source)
    key = {"dataset": "celeba", "split": split, "source": source.path, "layout": source.layout,
           "partition": source.partition or "official index ranges", "limit": limit,
           "fingerprint": source_fingerprint(source)}
    return cache.load_or_build(key, cache_stem(split, crop, image_size, limit), lambda: split_members(source, split, limit), kind=source.kind,
                               path=source.path, crop=crop, size=image_size, cache_dir=cache_dir,
                               num_workers=num_workers, progress=progress)
