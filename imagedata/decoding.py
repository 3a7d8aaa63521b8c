"""Decoding image files into uint8 (3, size, size) arrays, in parallel on all cores.

Every decoded dataset goes through ``decode_image``: an optional centred square crop, a LANCZOS
resize (antialiased), RGB, CHW uint8. A file that fails to decode is reported, never raised, so a
bad JPEG cannot stop a 200,000-image build.
"""
from __future__ import annotations

import collections
import concurrent.futures
import io
import multiprocessing
import os
import zipfile
from concurrent.futures.process import BrokenProcessPool
from typing import Iterator

import numpy as np
from PIL import Image

from system.errors import UserError

IMAGE_SIZE = 64
DEFAULT_CROP = 148  # CelebA's aligned faces: the centred square that holds the face
RESIZE_FILTER = "lanczos"
SQUARE = "square"  # crop the largest centred square, min(width, height)

def decode_image(data: bytes, crop: int | str | None = DEFAULT_CROP, size: int = IMAGE_SIZE) -> np.ndarray:
    """Encoded image bytes -> uint8 (3, size, size): centre crop, LANCZOS resize, RGB.

    ``crop``: a side in pixels, ``"square"`` for the largest centred square, or None for none.
    """
    with Image.open(io.BytesIO(data)) as im:
        im.load()  # raises on truncated files
        if im.mode != "RGB":
            im = im.convert("RGB")
        if crop == SQUARE:
            crop = min(im.size)
        if crop is not None:
            w, h = im.size
            if crop > w or crop > h:
                raise ValueError(f"the image is {w}x{h}, smaller than the {crop} px crop")
            left, top = (w - crop) // 2, (h - crop) // 2
            im = im.crop((left, top, left + crop, top + crop))
        im = im.resize((size, size), Image.Resampling.LANCZOS)
        return np.ascontiguousarray(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1))


def load_image(path, crop: int | str | None = SQUARE, size: int = IMAGE_SIZE) -> np.ndarray:
    """One image file -> uint8 (3, size, size), preprocessed as the datasets are (default: the
    largest centred square). Raises UserError naming the file when it cannot be read or decoded."""
    try:
        with open(os.path.expanduser(str(path)), "rb") as f:
            data = f.read()
    except OSError as e:
        raise UserError(f"cannot read the image {path} ({e.strerror or e}).") from None
    try:
        return decode_image(data, crop, size)
    except Image.UnidentifiedImageError:
        raise UserError(f"cannot decode the image {path}: it is not an image file PIL can read.") from None
    except Exception as e:  # PIL raises many kinds
        raise UserError(f"cannot decode the image {path} ({type(e).__name__}: {e}).") from None


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


def decode_in_workers(tasks: list, num_workers: int) -> Iterator[tuple[np.ndarray, list, int]]:
    """Results of ``_decode_chunk`` for every task, in order."""
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
        raise UserError(
            "a decoding worker process died (out of memory?); run again with fewer workers, e.g. --num-workers 1."
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
