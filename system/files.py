"""Atomic file writes: a file is either the old one or the complete new one, never half written."""
import json
import math
import os
from pathlib import Path


def atomic_write(path, write, *, fsync=True):
    """Call ``write(file)`` on a temporary binary file beside ``path``, then rename it into place.

    The temporary file carries the process id, so two writers never share one; on any error it is
    removed and the old ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_json(path, obj, *, indent=2):
    """``obj`` as JSON (non-finite floats become null) written atomically to ``path``."""
    text = json.dumps(finite(obj), indent=indent) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode()))


def finite(obj):
    """A JSON-safe copy of ``obj``: NaN and ±inf become None, tuples become lists."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
