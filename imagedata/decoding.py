"""Decoding image files into uint8 (3, size, size) arrays, in parallel on all cores.

Every decoded dataset goes through ``decode_image``: the EXIF orientation applied (a phone photo
stands as it was taken), 16-bit and float pixels scaled to 8 bits, transparency laid on white,
an optional centred square crop, a LANCZOS resize (antialiased), RGB, CHW uint8. A file that
fails to decode, or is larger than any image worth decoding at 64 px (``MAX_IMAGE_BYTES``), is
reported, never raised, so a bad file cannot stop a 200,000-image build. The decoding workers
end with the process that started them.
"""
from __future__ import annotations

import collections
import concurrent.futures
import ctypes
import io
import multiprocessing
import os
import signal
import stat
import sys
import zipfile
from concurrent.futures.process import BrokenProcessPool
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps

from system import signals
from system.errors import UserError

IMAGE_SIZE = 64
DEFAULT_CROP = 148  # CelebA's aligned faces: the centred square that holds the face
RESIZE_FILTER = "lanczos"
SQUARE = "square"  # crop the largest centred square, min(width, height)
MAX_IMAGE_BYTES = 64 * 2 ** 20  # a file (or zip member) larger than this is skipped, never read whole

def decode_image(data: bytes, crop: int | str | None = DEFAULT_CROP, size: int = IMAGE_SIZE) -> np.ndarray:
    """Encoded image bytes -> uint8 (3, size, size): centre crop, LANCZOS resize, RGB.

    ``crop``: a side in pixels, ``"square"`` for the largest centred square, or None for none.
    """
    with Image.open(io.BytesIO(data)) as im:
        im.load()  # raises on truncated files
        im = to_rgb(ImageOps.exif_transpose(im))
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


def to_rgb(im: Image.Image) -> Image.Image:
    """An 8-bit RGB image of ``im``: 16-bit and 32-bit pixels scaled (not clipped) to 0..255, float
    pixels read as [0, 1] (or 0..255 when larger), transparency composited on white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        if im.mode == "F":
            a = a * 255.0 if np.nanmax(a, initial=0.0) <= 1.0 else a
        elif im.mode == "I" and np.max(a, initial=0) <= 255:
            pass  # an 8-bit image stored wide
        else:
            a = a / 257.0  # 0..65535 onto 0..255
        im = Image.fromarray(np.clip(np.nan_to_num(a) + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")


def load_image(path, crop: int | str | None = SQUARE, size: int = IMAGE_SIZE) -> np.ndarray:
    """One image file -> uint8 (3, size, size), preprocessed as the datasets are (default: the
    largest centred square). Raises UserError naming the file when it cannot be read or decoded."""
    try:
        data = read_file(os.path.expanduser(str(path)))
    except OSError as e:
        raise UserError(f"cannot read the image {path} ({e.strerror or e}).") from None
    except ValueError as e:
        raise UserError(f"cannot read the image {path}: {e}.") from None
    try:
        return decode_image(data, crop, size)
    except Image.UnidentifiedImageError:
        raise UserError(f"cannot decode the image {path}: it is not an image file PIL can read.") from None
    except Exception as e:  # PIL raises many kinds
        raise UserError(f"cannot decode the image {path} ({type(e).__name__}: {e}).") from None


_OPEN_ZIPS: dict[str, zipfile.ZipFile] = {}


def read_file(path) -> bytes:
    """The bytes of a regular file of at most ``MAX_IMAGE_BYTES``; ValueError otherwise (a FIFO or a
    device is never opened for reading, so it cannot hang the build)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("it is not a regular file")
        return _capped(f.read(MAX_IMAGE_BYTES + 1))


def _read_member(kind: str, path: str, member: str) -> bytes:
    if kind == "zip":
        zf = _OPEN_ZIPS.get(path)
        if zf is None:
            zf = _OPEN_ZIPS[path] = zipfile.ZipFile(path)
        if zf.getinfo(member).file_size > MAX_IMAGE_BYTES:
            raise ValueError(f"the zip member claims {zf.getinfo(member).file_size:,} bytes, more than "
                             f"{MAX_IMAGE_BYTES:,}")
        with zf.open(member) as f:  # read with a cap: a member's header can lie about its size
            return _capped(f.read(MAX_IMAGE_BYTES + 1))
    return read_file(os.path.join(path, member))


def _capped(data: bytes) -> bytes:
    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(f"it holds more than {MAX_IMAGE_BYTES:,} bytes, too many for an image to decode")
    return data


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
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=min(num_workers, len(tasks)), mp_context=ctx,
                                                  initializer=_end_with_parent)
    try:
        pending: collections.deque = collections.deque()
        todo = iter(tasks)
        window = 4 * num_workers  # bounds the decoded chunks waiting in memory
        with signals.recorded() as stops:  # the pool spawns its workers here: a stop must not cut a spawn short
            for task in todo:
                pending.append(pool.submit(_decode_chunk, task))
                if len(pending) >= window:
                    break
        for signum in stops:  # the workers are whole: the stop acts now, with the handlers it had
            signal.raise_signal(signum)
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
    except BaseException:  # a stop (SIGTERM, Ctrl-C) or an error: the workers end now, not after their chunks
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
        raise
    finally:
        try:
            pool.shutdown(wait=True, cancel_futures=True)
        except RuntimeError:  # a stop landed while the pool was starting its manager thread, which cannot be joined
            pool.shutdown(wait=False, cancel_futures=True)


PR_SET_PDEATHSIG = 1  # <sys/prctl.h>


def _end_with_parent() -> None:
    """Initialiser of a decoding worker: it ends when its parent does (Linux's parent-death signal),
    and leaves Ctrl-C to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass
