"""The uint8 image cache: one ``.npy`` per split plus a JSON manifest.

A dataset decoded from files is decoded once, into ``cache_dir``; later runs read the array in
seconds (into memory, never mapped: a file truncated under a running job must not kill it). The manifest records what the array was built from (the key); a cache whose key differs
from the one asked for is rebuilt, never silently reused. Files that fail to decode are skipped,
counted and named in the manifest.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import time

import numpy as np

from system.errors import UserError
from system.files import write_json

from . import decoding

DEFAULT_CACHE_DIR = "cache"
CACHE_FORMAT_VERSION = 2  # 2: EXIF orientation applied, 16-bit images scaled, transparency on white

def fingerprint(entries, partition=None) -> str:
    """A short digest of a dataset's sources, cheap enough to take at every load.

    ``entries``: (name, size, mtime_ns) of every image file (or of one zip file); ``partition``:
    the split file, hashed by content. A file added, removed, rewritten or moved between splits
    changes the digest, so the cache built from the old sources is never served for the new ones.
    """
    digest = hashlib.sha256()
    for name, size, mtime_ns in sorted(entries):
        digest.update(f"{name}\0{size}\0{mtime_ns}\n".encode())
    if partition is not None:
        try:
            with open(partition, "rb") as f:
                digest.update(hashlib.sha256(f.read()).digest())
        except OSError as e:
            raise UserError(f"cannot read the partition file {partition} ({e.strerror or e}).") from None
    return digest.hexdigest()[:32]


def file_entries(folder, match) -> list[tuple[str, int, int]]:
    """(name, size, mtime_ns) of the files in ``folder`` whose names ``match``: one scandir pass."""
    entries = []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if match(entry.name):
                    st = entry.stat()
                    entries.append((entry.name, st.st_size, st.st_mtime_ns))
    except OSError as e:
        raise UserError(f"cannot read the folder {folder} ({e.strerror or e}).") from None
    return entries


def cache_paths(stem: str, cache_dir=None) -> tuple[str, str]:
    """(array .npy path, manifest .json path) of the cache named ``stem`` in ``cache_dir``."""
    folder = os.path.abspath(os.path.expanduser(str(cache_dir or DEFAULT_CACHE_DIR)))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError(f"--cache-dir {folder} is a file, not a folder; give a folder for the decoded caches.")
    return os.path.join(folder, stem + ".npy"), os.path.join(folder, stem + ".json")


def load_or_build(key: dict, stem: str, list_members, *, kind: str, path: str, crop, size: int,
                  cache_dir=None, num_workers=None, progress=True) -> tuple[np.ndarray, dict]:
    """The cached uint8 images (N, 3, size, size) of ``key``, built first when absent or stale.

    ``list_members()`` -> [(name, member)] of the files to decode (called only to build);
    ``kind``/``path``: where they are read from ("folder" of files or "zip" file).
    Returns (array, {"cache": npy path, "built": bool, "skipped": count}).
    """
    npy_path, json_path = cache_paths(stem, cache_dir)
    key = dict(key, format_version=CACHE_FORMAT_VERSION, image_size=size, crop=crop,
               resize_filter=decoding.RESIZE_FILTER)
    manifest = _read_manifest(json_path, npy_path)
    if manifest is not None:
        changed = [k for k in key if manifest.get(k) != key[k]]
        if not changed:
            arr = _open_cached(npy_path, json_path, manifest, size)
            if arr is not None:
                return arr, {"cache": npy_path, "built": False, "skipped": manifest.get("num_skipped", 0)}
        else:
            what = ", ".join("its source files changed" if k == "fingerprint" else
                             f"{k}: {manifest.get(k)!r} -> {key[k]!r}" for k in changed)
            print(f"note: the cache {npy_path} was built from something else ({what}); rebuilding it.", file=sys.stderr)
    members = list_members()
    if num_workers is None:  # a process pool pays off only beyond a few hundred images
        workers = min(decoding.default_num_workers(), -(-len(members) // 256))
    else:
        workers = max(1, int(num_workers))
    arr = _build_cache(kind, path, members, key, npy_path, json_path, crop=crop, size=size,
                       num_workers=workers, progress=progress)
    return arr, {"cache": npy_path, "built": True, "skipped": len(members) - len(arr)}


def _corrupt(npy_path: str, json_path: str, detail: str) -> UserError:
    return UserError(
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
    return _read_whole(arr, npy_path, json_path)


def _read_whole(mapped: np.memmap, npy_path: str, json_path: str) -> np.ndarray:
    """The cache's images in memory, read with ``read()``: a mapping would kill the process with
    SIGBUS if the file were truncated under it later; a read fails as an error, said in one sentence."""
    out = np.empty(mapped.shape, mapped.dtype)
    try:
        with open(npy_path, "rb") as f:
            f.seek(mapped.offset)
            if f.readinto(memoryview(out).cast("B")) != out.nbytes:
                raise EOFError("it ended while being read")
    except (OSError, EOFError) as e:
        raise _corrupt(npy_path, json_path, str(e).rstrip(".")) from None
    return out


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def remove_stale_temporaries(npy_path: str) -> None:
    """Delete ``<npy>.<pid>.tmp`` files that builds killed midway left, unless their process still runs."""
    folder, base = os.path.split(npy_path)
    pattern = re.compile(re.escape(base) + r"\.(\d+)\.(compact\.)?tmp$")
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        match = pattern.match(name)
        if match and not _alive(int(match.group(1))):
            _remove(os.path.join(folder, name))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process
    return True


def _build_cache(kind: str, path: str, members: list[tuple[str, str]], key: dict, npy_path: str, json_path: str,
                 *, crop, size: int, num_workers: int, progress: bool) -> np.ndarray:
    """Decode ``members`` into ``npy_path`` (written whole, then renamed) and write its manifest."""
    start = time.perf_counter()
    folder = os.path.dirname(npy_path)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the cache folder {folder} ({e.strerror or e}); choose another with --cache-dir.") from None
    _remove(json_path)  # an old manifest must never describe the new file
    remove_stale_temporaries(npy_path)
    check_space(folder, len(members) * 3 * size * size)
    tmp = f"{npy_path}.{os.getpid()}.tmp"
    try:
        count, skipped = _decode_into(tmp, kind, path, members, key, crop, size, num_workers, progress)
        os.replace(tmp, npy_path)
    except OSError as e:
        raise UserError(f"cannot write the cache file {npy_path} ({e.strerror or e}); free some space or choose "
                        f"another --cache-dir.") from None
    finally:
        _remove(tmp)
    manifest = dict(key, count=count, shape=[count, 3, size, size], dtype="uint8", num_listed=len(members),
                    num_skipped=len(skipped), skipped=[{"name": name, "reason": reason} for name, reason in skipped],
                    build_seconds=round(time.perf_counter() - start, 3), created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    write_json(json_path, manifest, indent=1)
    if skipped:
        shown = ", ".join(f"{name} ({reason})" for name, reason in skipped[:3])
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        print(f"skipped {len(skipped)} of {len(members)} {key['split']} images that could not be decoded: "
              f"{shown}{more}; all are listed in {json_path}", file=sys.stderr)
    return _open_cached(npy_path, json_path, manifest, size)


def check_space(folder: str, needed: int) -> None:
    """UserError before decoding when ``folder``'s disk has less free space than the cache's ``needed`` bytes."""
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise UserError(f"the cache needs {needed / 2**30:,.1f} GiB but {folder} has {free / 2**30:,.1f} GiB free; "
                        f"free some space, choose another --cache-dir, or lower --limit or the image size.")


def _decode_into(tmp: str, kind, path, members, key, crop, size, num_workers, progress) -> tuple[int, list]:
    """Decode ``members`` on ``num_workers`` processes into the .npy file ``tmp``, holding exactly the
    images that decoded; returns (their count, [(name, reason)] of the skipped ones)."""
    from tqdm import tqdm

    n = len(members)
    chunk = max(1, min(256, -(-n // (4 * max(1, num_workers)))))
    tasks = [(kind, path, members[i:i + chunk], crop, size) for i in range(0, n, chunk)]
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, 3, size, size))
    count, skipped = 0, []
    with tqdm(total=n, unit="img", desc=f"decoding {key['dataset']} {key['split']}", disable=not progress,
              dynamic_ncols=True) as bar:
        for images, bad, done in decoding.decode_in_workers(tasks, num_workers):
            arr[count:count + len(images)] = images
            count += len(images)
            skipped.extend(bad)
            bar.update(done)
    if count == 0:
        first = f" (first error: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise UserError(f"none of the {n} {key['split']} images in {path} could be decoded{first}.")
    if count < n:  # compact: the file holds exactly the decoded images
        compact = tmp[:-len(".tmp")] + ".compact.tmp"  # <npy>.<pid>.compact.tmp
        try:
            final = np.lib.format.open_memmap(compact, mode="w+", dtype=np.uint8, shape=(count, 3, size, size))
            for start in range(0, count, 4096):
                final[start:start + 4096] = arr[start:min(start + 4096, count)]
            final.flush()
            del final
            os.replace(compact, tmp)
        finally:
            _remove(compact)
    else:
        arr.flush()
    del arr
    return count, skipped
