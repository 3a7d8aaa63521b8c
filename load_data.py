"""Image data for bvaex: CelebA with its official splits, and the embedded shapes.

Every dataset is delivered as uint8 arrays of shape (N, 3, 64, 64) (CHW, RGB).
The model takes either float images in [0, 1] or these uint8 arrays, which
``to_float`` converts batch by batch on the device.

CelebA
    Download the "Align&Cropped Images" (``img_align_celeba.zip``, 202,599
    JPEGs of 178x218 named 000001.jpg ... 202599.jpg) and
    ``list_eval_partition.txt`` from the CelebA site and put them in one folder
    (default ``./data/celeba``; override with ``--data-dir`` or the
    environment variable ``BVAEX_DATA_DIR``). Accepted layouts::

        data/celeba/img_align_celeba/000001.jpg ...       (unzipped)
        data/celeba/img_align_celeba.zip                  (read in place)
        data/celeba/img_align_celeba/img_align_celeba/... (Kaggle download,
            with list_eval_partition.csv, header "image_id,partition")
        data/celeba/list_eval_partition.txt               (lines "000001.jpg 0")

    Partition codes: 0 train, 1 val, 2 test. Without a partition file the
    official index ranges are used (train 1-162,770, val 162,771-182,637,
    test 182,638-202,599) and a note says so. Training uses the train split
    only; evaluation uses test (or val).

    Preprocessing: centre crop of a ``--crop`` x ``--crop`` square (default
    148 px; ``--crop none`` resizes the whole 178x218 frame), resize to 64x64
    with Pillow's LANCZOS filter (antialiased; chosen over BOX for sharper
    faces at the same cost), convert to RGB (grayscale, CMYK and alpha images
    included), CHW uint8.

    The JPEGs are decoded once, in parallel on all cores, into one cache per
    split under ``--cache-dir`` (default ``./cache``): a memory-mappable uint8
    ``.npy`` file plus a JSON manifest (source, layout, crop, size, count,
    skipped files, format version). The file name holds the crop, size and
    limit, and the manifest the source; a cache made from anything else is
    rebuilt, never silently reused. Truncated or corrupt JPEGs are skipped,
    counted and named in the manifest.

Shapes
    ``--dataset shapes`` (the default) needs no download: procedural colour
    sprites with known factors, see ``shapes.py``.

Examples::

    python load_data.py --help
    python load_data.py --dataset shapes
    python load_data.py --dataset celeba --data-dir ~/datasets/celeba
    python load_data.py --dataset celeba --crop none --limit 5000
    BVAEX_DATA_DIR=/mnt/celeba python load_data.py --dataset celeba --cache-dir /scratch/cache
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import csv
import functools
import io
import json
import multiprocessing
import os
import re
import sys
import time
import zipfile
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np
from PIL import Image

if TYPE_CHECKING:  # JAX is imported lazily so that decoding workers stay light.
    import jax

DATASETS = ("shapes", "celeba")
SPLITS = ("train", "val", "test")
DATA_DIR_ENV = "BVAEX_DATA_DIR"
DEFAULT_DATA_DIR = os.path.join("data", "celeba")
DEFAULT_CACHE_DIR = "cache"
DEFAULT_CROP = 148
IMAGE_SIZE = 64
CELEBA_NUM_IMAGES = 202_599
CELEBA_FRAME = (178, 218)  # width, height of every aligned CelebA image
OFFICIAL_RANGES = {
    "train": (1, 162_770),
    "val": (162_771, 182_637),
    "test": (182_638, 202_599),
}
PARTITION_CODES = {"0": "train", "1": "val", "2": "test"}
PARTITION_FILES = ("list_eval_partition.txt", "list_eval_partition.csv")
RESIZE_FILTER = "lanczos"
CACHE_FORMAT_VERSION = 1

_IMAGE_NAME = re.compile(r"^\d{6}\.jpg$")
_OFFICIAL_NOTE_SHOWN: set[str] = set()


class DataError(Exception):
    """A problem with the data, described for the user in one sentence."""


def _missing_message(where: str) -> str:
    return (
        f"CelebA was not found in {where}: download the \"Align&Cropped Images\" file "
        "img_align_celeba.zip and list_eval_partition.txt from "
        "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html and put both in that folder "
        "(the zip may stay zipped or be unzipped into img_align_celeba/), or point "
        f"--data-dir or ${DATA_DIR_ENV} at the folder that holds them, or run on the "
        "embedded dataset instead with --dataset shapes."
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


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> str:
    """The data folder: the argument, else $BVAEX_DATA_DIR, else ./data/celeba."""
    if data_dir is None or str(data_dir) == "":
        data_dir = os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return os.path.abspath(os.path.expanduser(str(data_dir)))


def _has_images(folder: str) -> bool:
    try:
        with os.scandir(folder) as it:
            return any(_IMAGE_NAME.match(e.name) for e in it)
    except OSError as e:
        raise DataError(f"cannot read the folder {folder} ({e.strerror or e}).") from None


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
        raise DataError(_missing_message(root))
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
        raise DataError(
            f"the folder {empty[-1]} holds no CelebA images (JPEG files named 000001.jpg "
            f"to 202599.jpg); unzip img_align_celeba.zip there, or put the zip itself in "
            f"{root}, or run on the embedded dataset with --dataset shapes."
        )
    raise DataError(_missing_message(root))


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
                    if _IMAGE_NAME.match(name) and name not in images:
                        images[name] = info.filename
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise DataError(f"cannot read the zip file {source.path} ({e}); download it again.") from None
    else:
        try:
            with os.scandir(source.path) as it:
                for entry in it:
                    if _IMAGE_NAME.match(entry.name):
                        images[entry.name] = entry.name
        except OSError as e:
            raise DataError(f"cannot read the folder {source.path} ({e.strerror or e}).") from None
    if not images:
        raise DataError(
            f"{source.path} holds no CelebA images (JPEG files named 000001.jpg to 202599.jpg); "
            "download img_align_celeba.zip again or run on the embedded dataset with --dataset shapes."
        )
    return images


def read_partition(path: str) -> dict[str, str]:
    """Parse list_eval_partition.txt ("000001.jpg 0") or .csv ("image_id,partition")."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read the partition file {path} ({e}).") from None
    if path.lower().endswith(".csv"):
        rows = list(csv.reader(io.StringIO(text)))
        header = [c.strip() for c in rows[0]] if rows else []
        if header != ["image_id", "partition"]:
            raise DataError(
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
            raise DataError(
                f"line {lineno} of the partition file {path} is malformed ('{shown}'); every line "
                f"must look like '{example}' with 0 (train), 1 (val) or 2 (test)."
            )
        if fields[0] in partition:
            raise DataError(f"the partition file {path} lists {fields[0]} twice (line {lineno}).")
        partition[fields[0]] = PARTITION_CODES[fields[1]]
    if not partition:
        raise DataError(f"the partition file {path} is empty; download list_eval_partition.txt again.")
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
            raise DataError(
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
        raise DataError(f"the {split} split of CelebA in {source.path} has no images.")
    return [(n, images[n]) for n in names]


# --------------------------------------------------------------------------- #
# Decoding
# --------------------------------------------------------------------------- #


def decode_image(data: bytes, crop: int | None = DEFAULT_CROP, size: int = IMAGE_SIZE) -> np.ndarray:
    """Encoded image bytes -> uint8 (3, size, size): centre crop, LANCZOS resize, RGB."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()  # raises on truncated files
        if im.mode != "RGB":
            im = im.convert("RGB")
        if crop is not None:
            w, h = im.size
            if crop > w or crop > h:
                raise ValueError(f"the image is {w}x{h}, smaller than the {crop} px crop")
            left, top = (w - crop) // 2, (h - crop) // 2
            im = im.crop((left, top, left + crop, top + crop))
        im = im.resize((size, size), Image.Resampling.LANCZOS)
        return np.ascontiguousarray(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1))


_OPEN_ZIPS: dict[str, zipfile.ZipFile] = {}


def _read_member(kind: str, path: str, member: str) -> bytes:
    if kind == "zip":
        zf = _OPEN_ZIPS.get(path)
        if zf is None:
            zf = _OPEN_ZIPS[path] = zipfile.ZipFile(path)
        return zf.read(member)
    with open(os.path.join(path, member), "rb") as f:
        return f.read()


def _close_zips() -> None:
    while _OPEN_ZIPS:
        _, zf = _OPEN_ZIPS.popitem()
        zf.close()


def _decode_chunk(task) -> tuple[np.ndarray, list[tuple[str, str]], int]:
    """Decode a list of images; failures are reported, never raised."""
    kind, path, members, crop, size = task
    out = np.empty((len(members), 3, size, size), dtype=np.uint8)
    skipped: list[tuple[str, str]] = []
    k = 0
    for name, member in members:
        try:
            out[k] = decode_image(_read_member(kind, path, member), crop, size)
            k += 1
        except Exception as e:  # a bad file must not stop a 200k-image decode
            reason = f"{type(e).__name__}: {e}".replace("\n", " ")[:200]
            skipped.append((name, reason))
    return out[:k], skipped, len(members)


def default_num_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _decode_all(tasks: list, num_workers: int) -> Iterator[tuple[np.ndarray, list, int]]:
    """Results of _decode_chunk for every task, in order."""
    if num_workers <= 1 or len(tasks) <= 1:
        try:
            for task in tasks:
                yield _decode_chunk(task)
        finally:
            _close_zips()
        return
    # "spawn": the parent may run JAX threads, which must not be forked.
    ctx = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=min(num_workers, len(tasks)), mp_context=ctx)
    try:
        pending: collections.deque = collections.deque()
        todo = iter(tasks)
        window = 4 * num_workers  # bounds the decoded chunks waiting in memory
        for task in todo:
            pending.append(pool.submit(_decode_chunk, task))
            if len(pending) >= window:
                break
        while pending:
            result = pending.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.submit(_decode_chunk, nxt))
            yield result
    except BrokenProcessPool:
        raise DataError(
            "a decoding worker process died (out of memory?); run again with fewer workers, e.g. --num-workers 1."
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- #
# The cache
# --------------------------------------------------------------------------- #


def _cache_stem(split: str, crop: int | None, size: int, limit: int | None) -> str:
    crop_tag = "nocrop" if crop is None else f"crop{crop}"
    limit_tag = "" if limit is None else f"_first{limit}"
    return f"celeba_{split}_{crop_tag}_{size}px{limit_tag}"


def cache_paths(split: str, *, crop=DEFAULT_CROP, image_size=IMAGE_SIZE, limit=None, cache_dir=None) -> tuple[str, str]:
    """(array .npy path, manifest .json path) of one CelebA split's cache."""
    folder = os.path.abspath(os.path.expanduser(str(cache_dir or DEFAULT_CACHE_DIR)))
    stem = _cache_stem(split, crop, image_size, limit)
    return os.path.join(folder, stem + ".npy"), os.path.join(folder, stem + ".json")


def _corrupt(npy_path: str, json_path: str, detail: str) -> DataError:
    return DataError(
        f"the cache file {npy_path} is truncated or corrupt ({detail}); delete it and its manifest "
        f"{os.path.basename(json_path)} and run again to rebuild it."
    )


def _read_manifest(json_path: str, npy_path: str) -> dict | None:
    try:
        with open(json_path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _corrupt(npy_path, json_path, f"its manifest cannot be read: {e}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("count"), int):
        raise _corrupt(npy_path, json_path, "its manifest has no image count")
    return manifest


def _open_cached(npy_path: str, json_path: str, manifest: dict, size: int) -> np.ndarray | None:
    if not os.path.exists(npy_path):
        return None
    try:
        arr = np.load(npy_path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise _corrupt(npy_path, json_path, str(e).rstrip(".")) from None
    expected = (manifest["count"], 3, size, size)
    if not isinstance(arr, np.memmap) or arr.dtype != np.uint8 or arr.shape != expected:
        raise _corrupt(
            npy_path, json_path, f"it holds {arr.dtype} {arr.shape} but the manifest says uint8 {expected}"
        )
    actual = os.path.getsize(npy_path)
    if actual != arr.offset + arr.nbytes:
        raise _corrupt(npy_path, json_path, f"{actual} bytes instead of {arr.offset + arr.nbytes}")
    return arr


def _write_json_atomic(path: str, obj: dict) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _build_cache(
    source: Source,
    members: list[tuple[str, str]],
    key: dict,
    npy_path: str,
    json_path: str,
    *,
    crop: int | None,
    size: int,
    num_workers: int,
    progress: bool,
) -> np.ndarray:
    from tqdm import tqdm

    start = time.perf_counter()
    n = len(members)
    folder = os.path.dirname(npy_path)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the cache folder {folder} ({e.strerror or e}); choose another with --cache-dir.") from None
    _remove(json_path)  # an old manifest must never describe the new file
    chunk = max(1, min(256, -(-n // (4 * max(1, num_workers)))))
    tasks = [(source.kind, source.path, members[i:i + chunk], crop, size) for i in range(0, n, chunk)]
    tmp = f"{npy_path}.{os.getpid()}.tmp"
    tmp2 = f"{npy_path}.{os.getpid()}.compact.tmp"
    skipped: list[tuple[str, str]] = []
    try:
        try:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, 3, size, size))
            count = 0
            with tqdm(total=n, unit="img", desc=f"decoding CelebA {key['split']}", disable=not progress,
                      dynamic_ncols=True) as bar:
                for images, bad, done in _decode_all(tasks, num_workers):
                    arr[count:count + len(images)] = images
                    count += len(images)
                    skipped.extend(bad)
                    bar.update(done)
            if count == 0:
                first = f" (first error: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
                raise DataError(f"none of the {n} {key['split']} images in {source.path} could be decoded{first}.")
            if count < n:  # compact: the final file holds exactly the decoded images
                final = np.lib.format.open_memmap(tmp2, mode="w+", dtype=np.uint8, shape=(count, 3, size, size))
                for i in range(0, count, 4096):
                    j = min(i + 4096, count)
                    final[i:j] = arr[i:j]
                final.flush()
                del final
                del arr
                os.replace(tmp2, tmp)
            else:
                arr.flush()
                del arr
            os.replace(tmp, npy_path)
        except OSError as e:
            raise DataError(f"cannot write the cache file {npy_path} ({e.strerror or e}); free some space or choose another --cache-dir.") from None
    finally:
        _remove(tmp)
        _remove(tmp2)
    manifest = dict(key)
    manifest.update(
        count=count,
        shape=[count, 3, size, size],
        dtype="uint8",
        num_listed=n,
        num_skipped=len(skipped),
        skipped=[{"name": name, "reason": reason} for name, reason in skipped],
        build_seconds=round(time.perf_counter() - start, 3),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    _write_json_atomic(json_path, manifest)
    if skipped:
        shown = ", ".join(f"{name} ({reason})" for name, reason in skipped[:3])
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        print(
            f"skipped {len(skipped)} of {n} {key['split']} images that could not be decoded: {shown}{more}; "
            f"all are listed in {json_path}",
            file=sys.stderr,
        )
    return _open_cached(npy_path, json_path, manifest, size)


def _load_celeba(split, *, data_dir, crop, image_size, limit, cache_dir, num_workers, progress):
    source = find_source(data_dir)
    _note_official_ranges(source)
    npy_path, json_path = cache_paths(split, crop=crop, image_size=image_size, limit=limit, cache_dir=cache_dir)
    key = {
        "format_version": CACHE_FORMAT_VERSION,
        "dataset": "celeba",
        "split": split,
        "source": source.path,
        "layout": source.layout,
        "partition": source.partition or "official index ranges",
        "crop": crop,
        "image_size": image_size,
        "limit": limit,
        "resize_filter": RESIZE_FILTER,
    }
    manifest = _read_manifest(json_path, npy_path)
    if manifest is not None:
        changed = [k for k in key if manifest.get(k) != key[k]]
        if not changed:
            arr = _open_cached(npy_path, json_path, manifest, image_size)
            if arr is not None:
                return arr, {"cache": npy_path, "built": False, "skipped": manifest.get("num_skipped", 0)}
        else:
            what = ", ".join(f"{k}: {manifest.get(k)!r} -> {key[k]!r}" for k in changed)
            print(f"note: the cache {npy_path} was built with other options ({what}); rebuilding it.", file=sys.stderr)
    members = split_members(source, split, limit)
    if num_workers is None:  # a process pool pays off only beyond a few hundred images
        workers = min(default_num_workers(), -(-len(members) // 256))
    else:
        workers = max(1, int(num_workers))
    arr = _build_cache(source, members, key, npy_path, json_path, crop=crop, size=image_size,
                       num_workers=workers, progress=progress)
    return arr, {"cache": npy_path, "built": True, "skipped": len(members) - len(arr)}


# --------------------------------------------------------------------------- #
# Public loading API
# --------------------------------------------------------------------------- #


def parse_crop(value) -> int | None:
    """--crop value: a positive int, or None / 'none' for no crop."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "")):
        return None
    try:
        crop = int(value)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"--crop must be a number of pixels or 'none', not {value!r}") from None
    if crop < 1:
        raise argparse.ArgumentTypeError(f"--crop must be a positive number of pixels or 'none', not {value!r}")
    return crop


def _load(dataset, split, *, data_dir=None, crop=DEFAULT_CROP, image_size=IMAGE_SIZE, limit=None,
          cache_dir=None, num_workers=None, progress=True):
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}.")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}.")
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 1):
        raise DataError(f"--limit must be a positive number of images, not {limit!r}.")
    limit = None if limit is None else int(limit)
    if not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise DataError(f"the image size must be a positive number of pixels, not {image_size!r}.")
    image_size = int(image_size)
    if dataset == "shapes":
        import shapes

        if image_size != shapes.IMAGE_SIZE:
            raise DataError(f"the shapes dataset is {shapes.IMAGE_SIZE}x{shapes.IMAGE_SIZE} only, not {image_size}.")
        images, _ = shapes.make_split(split, limit)
        return images, {"cache": None, "built": True, "skipped": 0}
    try:
        crop = parse_crop(crop)
    except argparse.ArgumentTypeError as e:
        raise DataError(f"{e}.") from None
    if crop is not None and crop > min(CELEBA_FRAME):
        raise DataError(f"--crop {crop} is larger than the {CELEBA_FRAME[0]} px width of CelebA images; use at most {min(CELEBA_FRAME)} or 'none'.")
    return _load_celeba(split, data_dir=data_dir, crop=crop, image_size=image_size, limit=limit,
                        cache_dir=cache_dir, num_workers=num_workers, progress=progress)


def load_split(dataset: str, split: str, *, data_dir=None, crop=DEFAULT_CROP, image_size=IMAGE_SIZE, limit=None,
               cache_dir=None, num_workers=None, progress=True) -> np.ndarray:
    """One split as uint8 (N, 3, image_size, image_size).

    ``dataset``: "shapes" (generated, ``limit`` = number of images) or
    "celeba" (decoded once into the cache, then memory-mapped from it).
    ``split``: "train", "val" or "test". ``crop=None`` resizes the whole frame.
    Raises DataError with a one-sentence message for any data problem.
    """
    images, _ = _load(dataset, split, data_dir=data_dir, crop=crop, image_size=image_size, limit=limit,
                      cache_dir=cache_dir, num_workers=num_workers, progress=progress)
    return images


def to_device(images: np.ndarray, sharding=None) -> "jax.Array":
    """Copy uint8 images to the default device (or to ``sharding``), still uint8."""
    import jax

    a = np.asarray(images)
    if a.dtype != np.uint8 or a.ndim != 4:
        raise DataError(f"to_device expects uint8 images (N, 3, H, W), got {a.dtype} {a.shape}.")
    return jax.device_put(a) if sharding is None else jax.device_put(a, sharding)


def to_float(batch) -> "jax.Array":
    """uint8 -> float32 in [0, 1] (x / 255); float input is only cast. Jittable."""
    import jax.numpy as jnp

    x = jnp.asarray(batch)
    if x.dtype == jnp.uint8:
        return x.astype(jnp.float32) / 255.0
    return x.astype(jnp.float32)


def num_batches(num_images: int, batch_size: int) -> int:
    """Full batches per epoch (the remainder is dropped)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return int(num_images) // int(batch_size)


@functools.lru_cache(maxsize=None)
def _gather_fn():
    import jax
    import jax.numpy as jnp

    @functools.partial(jax.jit, static_argnames=("batch_size", "as_float"))
    def gather(images, perm, i, *, batch_size, as_float):
        idx = jax.lax.dynamic_slice_in_dim(perm, i * batch_size, batch_size)
        batch = jnp.take(images, idx, axis=0, mode="clip")
        return to_float(batch) if as_float else batch

    return gather


def iterate_batches(images, batch_size: int, key, *, as_float: bool = False) -> Iterator["jax.Array"]:
    """One epoch of shuffled batches (B, 3, H, W) on the device; the remainder is dropped.

    The order is ``jax.random.permutation(key, N)``, computed on the device,
    so the same key gives the same batches. ``as_float`` converts each batch
    to float32 in [0, 1] on the device.
    """
    import jax
    import jax.numpy as jnp

    batch_size = int(batch_size)
    if batch_size < 1:
        raise DataError(f"the batch size must be positive, not {batch_size}.")
    n = int(images.shape[0])
    if n < batch_size:
        raise DataError(f"the data has {n} images, fewer than one batch of {batch_size}; use a smaller batch size or more data.")
    if not isinstance(images, jax.Array):
        images = jnp.asarray(images)
    perm = jax.random.permutation(key, n)
    gather = _gather_fn()
    steps = n // batch_size

    def epoch():
        for i in range(steps):
            yield gather(images, perm, i, batch_size=batch_size, as_float=as_float)

    return epoch()


# --------------------------------------------------------------------------- #
# Command-line options shared by every script
# --------------------------------------------------------------------------- #


def int_at_least(minimum: int):
    """An argparse ``type`` for whole numbers >= ``minimum``, with a one-line error otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, not {text!r}")
        return value
    parse.__name__ = f"int>={minimum}"
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def add_data_arguments(parser: argparse.ArgumentParser, *, default_dataset: str = "shapes") -> None:
    """Add --dataset, --data-dir, --crop, --cache-dir and --limit to a parser."""
    if default_dataset not in DATASETS:
        raise ValueError(f"default_dataset must be one of {DATASETS}")
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", choices=DATASETS, default=default_dataset,
                       help=f"which images to use: the embedded procedural 'shapes' (no download) or 'celeba' "
                            f"(default: {default_dataset})")
    group.add_argument("--data-dir", default=None, metavar="DIR",
                       help=f"folder holding CelebA (img_align_celeba/, img_align_celeba.zip or the Kaggle layout) "
                            f"and list_eval_partition.txt/.csv (default: ${DATA_DIR_ENV}, else ./{DEFAULT_DATA_DIR})")
    group.add_argument("--crop", type=parse_crop, default=DEFAULT_CROP, metavar="PX|none",
                       help=f"side of the centre square cropped from each 178x218 CelebA image before resizing, "
                            f"or 'none' to resize the whole frame (default: {DEFAULT_CROP})")
    group.add_argument("--cache-dir", default=None, metavar="DIR",
                       help=f"folder for the decoded CelebA caches (default: ./{DEFAULT_CACHE_DIR})")
    group.add_argument("--limit", type=positive_int, default=None, metavar="N",
                       help="use at most the first N images of each split (default: all)")


def data_options(args) -> dict:
    """The data options of parsed arguments as a plain JSON-able dict (for checkpoints)."""
    crop = getattr(args, "crop", DEFAULT_CROP)
    limit = getattr(args, "limit", None)
    data_dir = getattr(args, "data_dir", None)
    cache_dir = getattr(args, "cache_dir", None)
    return {
        "dataset": str(getattr(args, "dataset", "shapes")),
        "data_dir": None if data_dir is None else str(data_dir),
        "crop": None if crop is None else int(crop),
        "cache_dir": None if cache_dir is None else str(cache_dir),
        "limit": None if limit is None else int(limit),
    }


_OPTION_KEYS = ("data_dir", "crop", "image_size", "limit", "cache_dir", "num_workers", "progress")


def load_from_options(options: dict, split: str, **overrides) -> np.ndarray:
    """load_split with the options of ``data_options`` (keyword overrides win)."""
    merged = dict(options)
    merged.update(overrides)
    if "dataset" not in merged:
        raise DataError("the stored data options name no dataset.")
    kwargs = {k: merged[k] for k in _OPTION_KEYS if k in merged}
    return load_split(merged["dataset"], split, **kwargs)


# --------------------------------------------------------------------------- #
# Command line
# --------------------------------------------------------------------------- #


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + " Builds (or checks) the data caches and reports them.",
        epilog="Examples:\n" + __doc__.split("Examples::\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_arguments(parser)
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS),
                        help="which splits to load (default: train val test)")
    parser.add_argument("--image-size", type=positive_int, default=IMAGE_SIZE,
                        help=f"side of the square output images in pixels (default: {IMAGE_SIZE})")
    parser.add_argument("--num-workers", type=positive_int, default=None,
                        help="processes decoding JPEGs (default: all cores)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    total = time.perf_counter()
    try:
        for split in args.splits:
            start = time.perf_counter()
            images, info = _load(args.dataset, split, data_dir=args.data_dir, crop=args.crop,
                                 image_size=args.image_size, limit=args.limit, cache_dir=args.cache_dir,
                                 num_workers=args.num_workers, progress=not args.no_progress)
            seconds = time.perf_counter() - start
            if info["cache"] is None:
                where, how = "(generated, not cached)", "generated"
            else:
                where, how = info["cache"], "built" if info["built"] else "loaded"
            skipped = f", {info['skipped']} skipped" if info["skipped"] else ""
            print(f"{args.dataset} {split:5s} {len(images):>7,d} images {tuple(images.shape)} {images.dtype}  "
                  f"{where}  ({how} in {seconds:.1f} s{skipped})")
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"total {time.perf_counter() - total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
