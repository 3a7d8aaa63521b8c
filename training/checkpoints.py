"""A checkpoint: one folder holding the parameters with the run's config, the optimiser state
and the progress, written whole into a temporary folder and renamed into place, so a
checkpoint is either complete or absent. Where checkpoints live is ``training/rundir.py``.

``load_run`` is the one way every command reads a trained model back: its parameters and its
``TrainConfig``.
"""
from __future__ import annotations

import json
import os
import shutil
import zipfile
from contextlib import contextmanager
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from imagedata import DataOptions
from model import Architecture, TrainState, adamw, init_state, load_params, save_params, tensor_file
from model.param_file import FILE_VERSION, ZIP_MAGIC, check_shapes
from system.errors import UserError
from system.files import write_json

from .config import TrainConfig
from .rundir import RunDir


def save_checkpoint(folder, state, config: TrainConfig, progress: dict) -> None:
    """Write params, optimizer state and progress into ``folder`` all at once (temp dir + rename).

    Between the two renames only ``.folder.tmp`` (complete) and ``.folder.old`` exist;
    ``RunDir.recover`` puts the newer back. A storage error is one sentence, temporaries removed.
    """
    folder = Path(folder)
    tmp = folder.with_name("." + folder.name + ".tmp")
    try:
        _write_into(tmp, state, config, progress)
        old = folder.with_name("." + folder.name + ".old")
        if folder.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"cannot save the checkpoint {folder} ({e.strerror or e}); free some space or "
                        f"choose another --weights-dir, then continue with --resume.") from None


def _write_into(tmp: Path, state, config: TrainConfig, progress: dict) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    params, opt = jax.device_get((state.params, state.opt))
    save_params(tmp / RunDir.PARAMS_FILE, params, config.as_dict())
    moments = {f"m.{k}": v for k, v in opt.m.items()} | {f"v.{k}": v for k, v in opt.v.items()}
    tensor_file.write(tmp / RunDir.OPTIMIZER_FILE, {"step": np.asarray(opt.step, np.int32), **moments},
                      {"bvaex": "optimizer", "version": str(FILE_VERSION)})
    write_json(tmp / RunDir.PROGRESS_FILE, progress)


def read_optimizer(path) -> dict:
    """{"step", "m.<name>", "v.<name>": NumPy array} of an optimiser file (safetensors or legacy .npz)."""
    with open(path, "rb") as f:
        legacy = f.read(4) == ZIP_MAGIC
    if legacy:
        with np.load(path, allow_pickle=False) as f:
            return {name: f[name] for name in f.files}
    return tensor_file.read(path)[0]


def load_run(weights=None, weights_dir="weights") -> tuple[dict, TrainConfig]:
    """(params, TrainConfig) of a trained model: ``weights`` (a parameter file, a checkpoint folder or
    a run folder) or the newest checkpoint of ``weights_dir``.

    A parameter file that records no config (a state_dict from elsewhere) gets the defaults, the
    architecture its shapes describe and ``config.data.dataset`` None.
    """
    path = RunDir(weights_dir).find_params(weights)
    params, recorded = load_params(path)
    if not recorded:
        return params, TrainConfig(data=DataOptions(dataset=None), model=Architecture.of(params))
    try:
        return params, TrainConfig.from_dict(recorded)
    except (TypeError, ValueError) as err:
        raise UserError(f"the config stored in {path} is malformed ({err}); pick another checkpoint.") from None


def saved_config(folder) -> TrainConfig:
    """The config recorded in a checkpoint folder, which a resumed run continues."""
    path = RunDir.params_file(folder)
    with naming_another(folder):
        _, recorded = load_params(path)
    if not recorded.get("model"):
        raise UserError(f"{path} records no training config, so it cannot be resumed; "
                        f"pick another checkpoint {another(folder)}.")
    try:
        return TrainConfig.from_dict(recorded)
    except (TypeError, ValueError) as err:
        raise UserError(f"the config stored in {folder} is malformed ({err}); pick another checkpoint "
                        f"{another(folder)}.") from None


def another(folder) -> str:
    """How to resume instead of from the unusable checkpoint ``folder``: the flag, and the newest
    checkpoint of its run with fewer steps when there is one."""
    folder = Path(folder)
    steps = RunDir.steps_of(folder)
    older = [path for _, path in RunDir(folder.parent).epochs()
             if path.resolve() != folder.resolve() and RunDir.steps_of(path) < steps]
    where = f" {older[-1]}" if older else " PATH"
    return f"with --resume-from{where} or start afresh with --overwrite"


@contextmanager
def naming_another(folder):
    """A parameter file's error while resuming from ``folder``, ending with ``another(folder)``."""
    try:
        yield
    except UserError as err:
        head, _, advice = str(err).rpartition("; ")
        said = head if head and "pick another" in advice else str(err).removesuffix(".")
        raise UserError(f"{said}; pick another checkpoint {another(folder)}.") from None


def load_state(folder, config: TrainConfig) -> tuple[TrainState, dict]:
    """(TrainState, progress dict) from a checkpoint folder written by ``save_checkpoint``."""
    folder = Path(folder)
    with naming_another(folder):
        params, _ = load_params(RunDir.params_file(folder), architecture=config.model)
    optimizer = RunDir.optimizer_file(folder)
    try:
        arrays = read_optimizer(optimizer)
        m = {k[2:]: a for k, a in arrays.items() if k.startswith("m.")}
        v = {k[2:]: a for k, a in arrays.items() if k.startswith("v.")}
        step = jnp.asarray(arrays["step"], jnp.int32)
        progress = json.loads((folder / RunDir.PROGRESS_FILE).read_text())
        progress = {k: int(progress[k]) for k in ("epoch", "batch", "step")} | {
            "wall_time": float(progress.get("wall_time") or 0.0),
            "train_images": None if progress.get("train_images") is None else int(progress["train_images"])}
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(f"The checkpoint in {folder} is incomplete or corrupt ({type(err).__name__}: {err}); "
                        f"pick another checkpoint {another(folder)}.") from None
    shapes = {name: p.shape for name, p in params.items()}
    with naming_another(folder):
        for moments in (m, v):  # an optimiser file from another model must not reach the step
            check_shapes(moments, shapes, optimizer)
    state = init_state(params, config.hparams)
    moments = [{k: jnp.asarray(a, jnp.float32) for k, a in d.items()} for d in (m, v)]
    return TrainState(state.params, adamw.AdamWState(step, *moments), state.hparams), progress
