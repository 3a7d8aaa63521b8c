"""The safetensors format, read and written with NumPy alone, and checked before anything is trusted.

    [8 bytes: N, little-endian u64] [N bytes: JSON header] [the tensors' bytes]

The header maps each name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the
bytes after the header) and may hold "__metadata__", a {str: str} map. Nothing is ever executed
or unpickled: the header is JSON, the tensors are raw little-endian bytes. A header that lies is
refused before any tensor is read: its size must fit in the file, every tensor's bytes must lie
inside the file and match its shape and dtype. Files written here load with the ``safetensors``
package (``safetensors.torch.load_file``), and files it writes load here.
"""
from __future__ import annotations

import json
import math
import os
import struct

import numpy as np

from system.files import atomic_write

MAX_HEADER = 100_000_000  # bytes: the limit of the reference implementation
DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
          "I8": "i1", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?"}
NUMPY_NAMES = {np.dtype(v).str: k for k, v in DTYPES.items() if k not in ("BF16",)}  # what ``write`` takes


class TensorFileError(ValueError):
    """The file is not a well-formed safetensors file; the message says what is wrong."""


def write(path, tensors: dict, metadata: dict | None = None) -> None:
    """Write NumPy arrays ``tensors`` ({name: array}) and ``metadata`` ({str: str}) to ``path``, atomically."""
    header, offset, arrays = {}, 0, []
    for name, value in tensors.items():
        a = np.asarray(value, order="C")  # (ascontiguousarray would make a scalar 1-d)
        a = a.astype(a.dtype.newbyteorder("<")) if a.dtype.byteorder == ">" else a
        if a.dtype.str not in NUMPY_NAMES:
            raise TypeError(f"{name}: dtype {a.dtype} has no safetensors name")
        header[name] = {"dtype": NUMPY_NAMES[a.dtype.str], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        arrays.append(a)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the tensors start 8-byte aligned

    def write_all(f):
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for a in arrays:
            f.write(a.tobytes())
    atomic_write(path, write_all)


def read_header(f, size: int) -> tuple[dict, dict, int]:
    """({name: entry}, metadata, start of the tensor bytes) of the open file ``f`` of ``size`` bytes."""
    if size < 8:
        raise TensorFileError(f"it has {size} bytes, fewer than the 8 of a safetensors header length")
    first = f.read(8)
    (length,) = struct.unpack("<Q", first)
    if length > MAX_HEADER and all(32 <= b < 127 or b in b"\t\n\r" for b in first):  # text: JSON, Markdown, ...
        raise TensorFileError(f"it begins with the text {first.decode()!r}, where a safetensors file begins with "
                              f"the length of its header")
    if length > min(MAX_HEADER, size - 8):
        raise TensorFileError(f"its header claims {length:,} bytes but the file holds {size - 8:,} after the length"
                              if length <= MAX_HEADER else f"its header claims {length:,} bytes, over the "
                              f"{MAX_HEADER:,} a safetensors header may have")
    try:
        header = json.loads(f.read(length).decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as e:
        raise TensorFileError(f"its header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise TensorFileError("its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise TensorFileError("its __metadata__ is not a map of strings")
    start = 8 + length
    for name, entry in header.items():
        _check_entry(name, entry, size - start)
    return header, metadata, start


def read(path, names=None) -> tuple[dict, dict]:
    """({name: NumPy array}, metadata) of a safetensors file; only ``names`` when given.

    BF16 tensors come back as float32 (exactly: bfloat16 is float32's upper half); every other dtype
    as stored. Raises TensorFileError (a ValueError) saying what is wrong, OSError when unreadable.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        header, metadata, start = read_header(f, size)
        tensors = {}
        for name in header if names is None else [n for n in names if n in header]:
            entry = header[name]
            begin, end = entry["data_offsets"]
            f.seek(start + begin)
            data = f.read(end - begin)
            if len(data) != end - begin:
                raise TensorFileError(f"the bytes of '{name}' end past the end of the file")
            a = np.frombuffer(data, DTYPES[entry["dtype"]]).reshape(entry["shape"])
            if entry["dtype"] == "BF16":
                a = (a.astype(np.uint32) << 16).view(np.float32)
            tensors[name] = a
    return tensors, metadata


def dtypes(path) -> dict:
    """{name: safetensors dtype name} of a file, from its header alone."""
    with open(path, "rb") as f:
        header, _, _ = read_header(f, os.fstat(f.fileno()).st_size)
    return {name: entry["dtype"] for name, entry in header.items()}


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"the name {next(k for k in keys if keys.count(k) > 1)!r} appears twice")
    return dict(pairs)


def _check_entry(name, entry, available: int) -> None:
    """TensorFileError unless ``entry`` describes ``available``-bounded bytes matching its shape and dtype."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise TensorFileError(f"the entry of '{name}' is not {{dtype, shape, data_offsets}}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in DTYPES:
        raise TensorFileError(f"'{name}' has the unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise TensorFileError(f"'{name}' has a shape that is not a list of sizes: {shape!r}")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
        raise TensorFileError(f"'{name}' has malformed data_offsets {offsets!r}")
    begin, end = offsets
    if not 0 <= begin <= end <= available:
        raise TensorFileError(f"the bytes of '{name}' ({begin}..{end}) lie outside the {available:,} the file holds")
    if end - begin != math.prod(shape) * np.dtype(DTYPES[dtype]).itemsize:
        raise TensorFileError(f"'{name}' claims shape {shape} of {dtype} but spans {end - begin} bytes")
