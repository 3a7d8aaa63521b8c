"""Any folder of one's own images: JPEG, PNG and WebP files, searched recursively.

Each image is centre-cropped (by default the largest centred square, ``"square"``), resized to
64×64 with LANCZOS (antialiased) and decoded once into the uint8 cache of ``cache.py``, like
CelebA; files that fail to decode are skipped and named in the cache's manifest.

Splits: a split file (``--split-file``, lines ``relative/path.jpg train|val|test``; only the
files it lists are used), else each image's split follows from the SHA-1 of its relative path
(90% train, 5% val, 5% test), so adding images never moves an old one to another split.

The cache key holds a fingerprint of every image's (relative path, size, mtime_ns): adding,
removing or modifying a file rebuilds the cache.
"""
from __future__ import annotations

import hashlib
import os
import stat

from system.errors import UserError

from . import cache, decoding
from .options import SPLITS

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
DEFAULT_CROP = decoding.SQUARE
SPLIT_FRACTIONS = dict(zip(SPLITS, (0.90, 0.05, 0.05)))


def resolve_root(data_dir) -> str:
    """The image folder, absolute; UserError when it is not given or not a folder."""
    if data_dir is None or str(data_dir) == "":
        raise UserError("--dataset folder needs --data-dir DIR, the folder holding your images.")
    root = os.path.abspath(os.path.expanduser(str(data_dir)))
    if not os.path.isdir(root):
        raise UserError(f"--data-dir {data_dir} is not a folder; point it at the folder holding your images.")
    return root


def scan(root: str) -> list[tuple[str, int, int]]:
    """Sorted (relative path with '/', size, mtime_ns) of every image file under ``root``.

    Hidden files and folders (names starting with '.') are left out. Links are followed, but no
    folder is visited twice and no file counted twice (a link loop such as ``sub/up -> ..``, or two
    links to one photo, would otherwise put the same image in train and test); only regular files
    count (a FIFO named ``x.jpg`` is never opened).
    """
    found, seen_dirs, seen_files = [], set(), set()

    def fail(err):
        raise UserError(f"cannot read the folder {err.filename} ({err.strerror or err}).")

    for folder, dirs, files in os.walk(root, onerror=fail, followlinks=True):
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen_dirs:
            dirs[:] = []
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or not name.lower().endswith(EXTENSIONS):
                continue
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
            except OSError:
                continue  # vanished or a broken link
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in seen_files:
                continue
            seen_files.add((st.st_dev, st.st_ino))
            found.append((os.path.relpath(path, root).replace(os.sep, "/"), st.st_size, st.st_mtime_ns))
    return sorted(found)


def fingerprint(files) -> str:
    """SHA-1 of every (relative path, size, mtime_ns): changes when any file is added, removed or modified."""
    h = hashlib.sha1()
    for rel, size, mtime in files:
        h.update(f"{rel}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def hashed_split(rel: str) -> str:
    """The split of an image by the first 4 bytes of the SHA-1 of its relative path (90/5/5)."""
    u = int.from_bytes(hashlib.sha1(rel.encode("utf-8", "surrogateescape")).digest()[:4], "big") / 2 ** 32
    edge = 0.0
    for name, fraction in SPLIT_FRACTIONS.items():
        edge += fraction
        if u < edge:
            return name
    return SPLITS[-1]


def read_split_file(path) -> dict[str, str]:
    """{relative path: split} from lines 'relative/path.jpg train|val|test' (blank and '#' lines skipped)."""
    try:
        with open(os.path.expanduser(str(path)), encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read the split file {path} ({getattr(e, 'strerror', None) or e}).") from None
    splits: dict[str, str] = {}
    for lineno, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        fields = text.rsplit(None, 1)
        if len(fields) != 2 or fields[1] not in SPLITS:
            raise UserError(f"line {lineno} of the split file {path} is malformed ('{text[:60]}'); every line must "
                            f"look like 'relative/path.jpg train' with train, val or test.")
        rel = fields[0].replace("\\", "/")
        rel = rel[2:] if rel.startswith("./") else rel
        if rel in splits:
            raise UserError(f"the split file {path} lists {rel} twice (line {lineno}); give every image one line.")
        splits[rel] = fields[1]
    if not splits:
        raise UserError(f"the split file {path} lists no images.")
    return splits


def split_members(files, split: str, split_file=None, limit=None) -> list[tuple[str, str]]:
    """Sorted (name, member) pairs of one split; both are the relative path."""
    present = [rel for rel, _, _ in files]
    if split_file is not None:
        listed = read_split_file(split_file)
        missing = sorted(set(listed) - set(present))
        if missing:
            raise UserError(f"the split file {split_file} lists {len(missing)} image(s) not found in the folder "
                            f"(for example {missing[0]}); fix the file or the folder.")
        names = sorted(rel for rel, s in listed.items() if s == split)
    else:
        names = [rel for rel in present if hashed_split(rel) == split]
    if limit is not None:
        names = names[:limit]
    return [(n, n) for n in names]


def crop_tag(crop) -> str:
    return "nocrop" if crop is None else (str(crop) if isinstance(crop, str) else f"crop{crop}")


def cache_stem(root, split, crop, image_size, limit, split_file=None) -> str:
    """One split's cache file name: a hash of the folder (and split file), then the options that change the pixels."""
    where = hashlib.sha1(f"{root}\0{split_file or ''}".encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return (f"folder_{where}_{split}_{crop_tag(crop)}_{image_size}px"
            + ("" if limit is None else f"_first{limit}"))


def load_split(split, *, data_dir=None, crop=DEFAULT_CROP, image_size=decoding.IMAGE_SIZE, limit=None, cache_dir=None,
         num_workers=None, progress=True, split_file=None):
    """(uint8 images (N, 3, image_size, image_size), cache info) of one split of an image folder.

    An empty train split is an error; an empty val or test split is an empty array (a small folder
    may have none), which the commands that need images report.
    """
    root = resolve_root(data_dir)
    files = scan(root)
    if not files:
        raise UserError(f"the folder {root} holds no images ({', '.join(EXTENSIONS)} files, searched recursively).")
    split_file = None if split_file is None else os.path.abspath(os.path.expanduser(str(split_file)))
    members = split_members(files, split, split_file, limit)
    if not members:
        if split == "train":
            raise UserError(f"the train split of the {len(files)} images in {root} is empty; check --split-file.")
        import numpy as np
        return np.zeros((0, 3, image_size, image_size), np.uint8), {"cache": None, "built": False, "skipped": 0}
    key = {"dataset": "folder", "split": split, "source": root, "limit": limit,
           "split_file": split_file or "sha1 of the relative path (90/5/5)",
           "split_file_sha1": _file_sha1(split_file) if split_file else None,
           "fingerprint": fingerprint(files), "num_files": len(files)}
    return cache.load_or_build(key, cache_stem(root, split, crop, image_size, limit, split_file), lambda: members,
                               kind="folder", path=root, crop=crop, size=image_size, cache_dir=cache_dir,
                               num_workers=num_workers, progress=progress)


def _file_sha1(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()
