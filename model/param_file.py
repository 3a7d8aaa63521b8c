"""Parameter files: tensors named and shaped like a PyTorch state_dict, with the run's config.

A parameter file is a ``.safetensors`` file (``model/tensor_file.py``) whose metadata says what
wrote it (``"bvaex": "params"``, the file layout's ``"version"``) and holds the run's config as
JSON; PyTorch loads it with ``safetensors.torch.load_file``. A state_dict PyTorch saved with
``safetensors.torch.save_file`` loads too, its architecture read from the shapes. Parameter
files written before safetensors (``params.npz``, the config as a string array) still load.

Nothing is unpickled or executed: the ``.npz`` reader refuses pickles (``allow_pickle=False``).
Writes go to a temporary file renamed into place: a kill mid-write leaves the old file. Where a
training run keeps its files is ``training/rundir.py``'s business, not this module's.
"""
import json
import sys
import zipfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from system.errors import UserError
from system.files import atomic_write

from . import tensor_file
from .architecture import Architecture

FILE_VERSION = 1  # of the layout written here; a file of a newer one is refused
CONFIG_KEY = "__config__"  # where a legacy .npz keeps its config
CONVERTED = {"F16": "float16", "BF16": "bfloat16", "F64": "float64"}  # read as float32, with a note
ZIP_MAGIC = b"PK\x03\x04"


def save_params(path, params, config=None):
    """Write params (flat dict of arrays) and a JSON-able ``config`` to ``path``: safetensors, or the
    legacy ``.npz`` when the name ends so."""
    arrays = {name: np.asarray(value) for name, value in params.items()}
    if str(path).endswith(".npz"):
        arrays[CONFIG_KEY] = np.array(json.dumps(config or {}))
        atomic_write(path, lambda f: np.savez(f, **arrays))
        return
    tensor_file.write(path, arrays, {"bvaex": "params", "version": str(FILE_VERSION), "config": json.dumps(config or {})})


def read_params(path) -> tuple[dict, dict]:
    """(NumPy arrays by name, the recorded config dict, {} when none) of a parameter file, unchecked."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"No parameter file at {path}; pass --weights with a checkpoint folder or parameter file.")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
        return _read_npz(path) if magic == ZIP_MAGIC else _read_safetensors(path)
    except OSError as err:
        raise UserError(f"cannot read {path} ({err.strerror or err}); pick another checkpoint.") from None


def _read_safetensors(path) -> tuple[dict, dict]:
    try:
        names = tensor_file.dtypes(path)
        arrays, metadata = tensor_file.read(path)
    except tensor_file.TensorFileError as err:
        raise UserError(f"{path} is neither a safetensors nor a .npz parameter file ({err}); pick another "
                        f"checkpoint.") from None
    version = metadata.get("version", "1") if metadata.get("bvaex") else "1"
    if not version.isdigit() or int(version) > FILE_VERSION:
        raise UserError(f"{path} was written by a newer bvaex (parameter file version {version}); update bvaex "
                        f"or pick another checkpoint.")
    try:
        config = json.loads(metadata.get("config") or "{}")
    except ValueError as err:
        raise UserError(f"the config stored in {path} is not JSON ({err}); pick another checkpoint.") from None
    converted = sorted({CONVERTED[d] for d in names.values() if d in CONVERTED})
    if converted:
        print(f"note: {path} stores {' and '.join(converted)} parameters; they were converted to float32.",
              file=sys.stderr)
    return {k: v.astype(np.float32) if names[k] in CONVERTED else v for k, v in arrays.items()}, _object(config, path)


def _read_npz(path) -> tuple[dict, dict]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (ValueError, zipfile.BadZipFile, EOFError) as err:
        raise UserError(f"{path} is not a readable parameter file ({err}); retrain or pick another checkpoint.") from None
    try:
        config = json.loads(str(arrays.pop(CONFIG_KEY))) if CONFIG_KEY in arrays else {}
    except ValueError as err:
        raise UserError(f"the config stored in {path} is not JSON ({err}); retrain or pick another checkpoint.") from None
    return arrays, _object(config, path)


def _object(config, path) -> dict:
    if not isinstance(config, dict):
        raise UserError(f"the config stored in {path} is not a JSON object; retrain or pick another checkpoint.")
    return config


def check_shapes(arrays, expected, where) -> None:
    """UserError naming the first parameter of ``expected`` ({name: shape}) missing, misshapen or not
    floating in ``arrays``, or the first name of ``arrays`` that ``expected`` lacks."""
    for name, shape in expected.items():
        if name not in arrays:
            raise UserError(f"{where} has no parameter '{name}': it was not written for this model.")
        if tuple(arrays[name].shape) != tuple(shape):
            raise UserError(f"Parameter '{name}' in {where} has shape {tuple(arrays[name].shape)}, but the model "
                            f"expects {tuple(shape)}: the checkpoint is of another architecture.")
        if not np.issubdtype(arrays[name].dtype, np.floating):
            raise UserError(f"Parameter '{name}' in {where} is {arrays[name].dtype}, not floating point: it was not "
                            f"written for this model.")
    extra = sorted(set(arrays) - set(expected))
    if extra:
        raise UserError(f"{where} holds '{extra[0]}', which this model has no parameter for: it was not written "
                        f"for this model.")


def load_params(path, architecture=None) -> tuple[dict, dict]:
    """Read (params, config) from ``path``; check every name and shape against the architecture.

    ``architecture`` defaults to the one recorded in the file's config (``config['model']``), else the
    one the parameter shapes describe.
    """
    from .model import build  # the model package imports this module first
    arrays, config = read_params(path)
    if architecture is None:
        try:
            recorded = config.get("model")
            architecture = Architecture(**recorded) if isinstance(recorded, dict) else Architecture.of(arrays)
        except (TypeError, ValueError) as err:
            prefix = wrapper_prefix(arrays)
            if prefix:
                raise UserError(f"{path} holds the parameters under the prefix '{prefix}', as a wrapped PyTorch "
                                f"model (DataParallel, torch.compile) saves them; save the inner model's "
                                f"state_dict, or the same names without '{prefix}'.") from None
            raise UserError(f"{path} does not hold this model's parameters ({err}); pick another checkpoint.") from None
    expected = build(architecture).param_shapes()
    check_shapes(arrays, expected, path)
    params = {name: jnp.asarray(arrays[name], jnp.float32) for name in expected}
    broken = next((name for name, p in params.items() if not np.isfinite(np.asarray(p)).all()), None)
    if broken is not None:
        raise UserError(f"Parameter '{broken}' in {path} holds NaN or infinite values (the run that wrote it had "
                        f"diverged); pick another checkpoint.")
    return params, config


def wrapper_prefix(arrays) -> str | None:
    """The one prefix before the state_dict names ('module.' of DataParallel, '_orig_mod.' of
    torch.compile), when every copy of the first parameter's name carries the same one."""
    first = "encoder.conv1.weight"
    prefixes = {name[:-len(first)] for name in arrays if name.endswith("." + first)}
    return prefixes.pop() if len(prefixes) == 1 else None
