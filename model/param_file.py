"""Parameter files: a plain ``.npz`` of arrays named like a PyTorch state_dict, plus a JSON config.

Loading never unpickles (``allow_pickle=False``), so a file from elsewhere cannot run code.
Writes go to a temporary file that is renamed into place: a kill mid-write leaves the old file.
Where a training run keeps its files is ``training/rundir.py``'s business, not this module's.
"""
import json
import zipfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from system.errors import UserError
from system.files import atomic_write

from .architecture import Architecture

CONFIG_KEY = "__config__"


def save_params(path, params, config=None):
    """Write params (flat dict of arrays) and a JSON-able ``config`` to ``path`` (.npz)."""
    arrays = {name: np.asarray(value) for name, value in params.items()}
    arrays[CONFIG_KEY] = np.array(json.dumps(config or {}))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def read_params(path) -> tuple[dict, dict]:
    """(NumPy arrays by name, the recorded config dict, {} when none) of a parameter file, unchecked."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"No parameter file at {path}; pass --weights with a checkpoint folder or parameter file.")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise UserError(f"{path} is not a readable parameter file ({err}); retrain or pick another checkpoint.") from None
    try:
        config = json.loads(str(arrays.pop(CONFIG_KEY))) if CONFIG_KEY in arrays else {}
    except ValueError as err:
        raise UserError(f"the config stored in {path} is not JSON ({err}); retrain or pick another checkpoint.") from None
    if not isinstance(config, dict):
        raise UserError(f"the config stored in {path} is not a JSON object; retrain or pick another checkpoint.")
    return arrays, config


def check_shapes(arrays, expected, where) -> None:
    """UserError naming the first parameter of ``expected`` ({name: shape}) missing or misshapen in ``arrays``."""
    for name, shape in expected.items():
        if name not in arrays:
            raise UserError(f"{where} has no parameter '{name}': it was not written for this model.")
        if tuple(arrays[name].shape) != tuple(shape):
            raise UserError(f"Parameter '{name}' in {where} has shape {tuple(arrays[name].shape)}, but the model "
                            f"expects {tuple(shape)}: the checkpoint is of another architecture.")


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
            raise UserError(f"{path} does not hold this model's parameters ({err}); pick another checkpoint.") from None
    expected = build(architecture).param_shapes()
    check_shapes(arrays, expected, path)
    return {name: jnp.asarray(arrays[name], jnp.float32) for name in expected}, config
