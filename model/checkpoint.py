"""Parameter files: a plain ``.npz`` of arrays named like a PyTorch state_dict, plus a JSON config.

Loading never unpickles (``allow_pickle=False``), so a file from elsewhere cannot run code.
Writes go to a temporary file that is renamed into place: a kill mid-write leaves the old file.
"""
import json
import zipfile
from pathlib import Path

import jax
import numpy as np

from system.errors import UserError
from system.files import atomic_write

CONFIG_KEY = "__config__"


def save_params(path, params, config=None):
    """Write params (flat dict of arrays) and a JSON-able ``config`` to ``path`` (.npz)."""
    arrays = {name: np.asarray(value) for name, value in params.items()}
    arrays[CONFIG_KEY] = np.array(json.dumps(config or {}))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def expected_shapes(arch):
    """{name: shape} of the parameters of the model with architecture ``arch``."""
    from .model import init_params  # local: model imports this module's package
    return {name: tuple(p.shape) for name, p in init_params(jax.random.PRNGKey(0), **arch).items()}


def load_params(path, architecture=None):
    """Read (params, config) from ``path``; check every name and shape against the architecture.

    ``architecture`` defaults to the one recorded in the file's config (``config['model']``),
    or the seed's when the file records none.
    """
    from .model import DEFAULT_ARCHITECTURE
    path = Path(path)
    if not path.is_file():
        raise UserError(f"No parameter file at {path}: train one with `python train.py` or pass --weights.")
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
    arch = dict(DEFAULT_ARCHITECTURE, **(architecture or config.get("model") or {}))
    arch["channels"] = tuple(arch["channels"])
    for name, shape in expected_shapes(arch).items():
        if name not in arrays:
            raise UserError(f"{path} has no parameter '{name}': it was not written for this model.")
        if arrays[name].shape != shape:
            raise UserError(f"Parameter '{name}' in {path} has shape {arrays[name].shape}, "
                                  f"but the model expects {shape}: the checkpoint is of another architecture.")
    params = {name: jax.numpy.asarray(arrays[name], jax.numpy.float32) for name in expected_shapes(arch)}
    return params, config


PARAMS_FILE = "params.npz"
HISTORY_FILE = "history.json"  # beside the epoch_N/ folders of a run
SAMPLES_DIR = "samples"  # the grids written while a run trains (training/monitor.py)
EPOCH_PREFIX = "epoch_"


def epoch_dirs(weights_dir):
    """[(epoch, path)] of the complete ``weights/epoch_N/`` checkpoints, oldest first."""
    weights_dir = Path(weights_dir)
    found = []
    if weights_dir.is_dir():
        for path in weights_dir.iterdir():
            suffix = path.name[len(EPOCH_PREFIX):]
            if path.name.startswith(EPOCH_PREFIX) and suffix.isdigit() and (path / PARAMS_FILE).is_file():
                found.append((int(suffix), path))
    return sorted(found)


def latest_checkpoint(weights_dir="weights"):
    """The newest ``weights_dir/epoch_N`` holding a parameter file, or None."""
    found = epoch_dirs(weights_dir)
    return found[-1][1] if found else None


def resolve_weights(weights=None, weights_dir="weights"):
    """The params file to load: ``weights`` (a params file or an epoch folder) or the latest one.

    Raises UserError with one sentence when there is none.
    """
    if weights is None:
        latest = latest_checkpoint(weights_dir)
        if latest is None:
            raise UserError(f"No checkpoint found in {weights_dir}/: train one first with "
                                  f"`python train.py --dataset faces`, or pass --weights PATH.")
        return latest / PARAMS_FILE
    path = Path(weights)
    return path / PARAMS_FILE if path.is_dir() else path


def load_checkpoint(weights=None, weights_dir="weights"):
    """(params, config, path) of a checkpoint; see ``resolve_weights`` for what is looked up."""
    path = resolve_weights(weights, weights_dir)
    params, config = load_params(path)
    return params, config, path
