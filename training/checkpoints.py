"""A run's folder: ``epoch_N/`` checkpoints (parameters, optimiser state, progress) and its history.

Each checkpoint folder is written whole into a temporary folder and renamed into place, so a
checkpoint is either complete or absent. ``interrupted/`` holds the state saved at Ctrl-C.
"""
from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from model import adamw, init_state, load_params, save_params
from model.checkpoint import EPOCH_PREFIX, HISTORY_FILE, PARAMS_FILE, epoch_dirs
from model.model import TrainState
from system.errors import UserError
from system.files import atomic_write, write_json

from .config import TrainConfig

INTERRUPTED = "interrupted"
OPTIMIZER_FILE = "optimizer.npz"
PROGRESS_FILE = "trainer.json"


def epoch_folder(weights_dir, epoch) -> Path:
    return Path(weights_dir) / f"{EPOCH_PREFIX}{epoch}"


def save_checkpoint(folder, state, config: TrainConfig, progress: dict) -> None:
    """Write params, optimizer state and progress into ``folder`` all at once (temp dir + rename).

    Between the two renames only ``.folder.tmp`` (complete) and ``.folder.old`` exist;
    ``rundir.recover`` puts the newer back. A storage error is one sentence, temporaries removed.
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
    save_params(tmp / PARAMS_FILE, params, config.as_dict())
    moments = {f"m.{k}": v for k, v in opt.m.items()} | {f"v.{k}": v for k, v in opt.v.items()}
    atomic_write(tmp / OPTIMIZER_FILE, lambda f: np.savez(f, step=np.asarray(opt.step), **moments))
    write_json(tmp / PROGRESS_FILE, progress)


def latest_saved(weights_dir) -> Path | None:
    """The newest checkpoint folder of a run (an epoch or an interrupted one), or None."""
    try:
        return find_resume_point(weights_dir)
    except UserError:
        return None


def saved_config(folder) -> TrainConfig:
    """The config recorded in a checkpoint folder."""
    _, config = load_params(Path(folder) / PARAMS_FILE)
    if not config.get("model"):
        raise UserError(f"{Path(folder) / PARAMS_FILE} records no training config, so it cannot be resumed; "
                        f"pick another checkpoint with --resume-from or start afresh.")
    try:
        return TrainConfig.from_dict(config)
    except (TypeError, ValueError) as err:
        raise UserError(f"the config stored in {folder} is malformed ({err}); pick another checkpoint with "
                        f"--resume-from or start afresh.") from None


def load_state(folder, config: TrainConfig) -> tuple[TrainState, dict]:
    """(TrainState, progress dict) from a checkpoint folder written by ``save_checkpoint``."""
    folder = Path(folder)
    params, _ = load_params(folder / PARAMS_FILE, architecture=config.architecture())
    try:
        with np.load(folder / OPTIMIZER_FILE, allow_pickle=False) as f:
            m = {k: jnp.asarray(f[f"m.{k}"]) for k in params}
            v = {k: jnp.asarray(f[f"v.{k}"]) for k in params}
            step = jnp.asarray(f["step"], jnp.int32)
        progress = json.loads((folder / PROGRESS_FILE).read_text())
        progress = {k: int(progress[k]) for k in ("epoch", "batch", "step")} | {
            "wall_time": float(progress.get("wall_time") or 0.0)}
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(f"The checkpoint in {folder} is incomplete or corrupt ({type(err).__name__}: {err}); "
                        f"pick another with --resume-from or start afresh.") from None
    state = init_state(params, **config.hyperparams())
    return TrainState(state.params, adamw.AdamWState(step, m, v), state.hparams), progress


def find_resume_point(weights_dir) -> Path:
    """The checkpoint folder with the most steps: the newest epoch_N or an interrupted one."""
    candidates = [path for _, path in epoch_dirs(weights_dir)]
    interrupted = Path(weights_dir) / INTERRUPTED
    if (interrupted / PARAMS_FILE).is_file():
        candidates.append(interrupted)
    if not candidates:
        raise UserError(f"--resume found no checkpoint in {weights_dir}/; run without --resume to start a new run.")

    def steps(path):
        try:
            return json.loads((path / PROGRESS_FILE).read_text())["step"]
        except (OSError, KeyError, ValueError, TypeError):
            return -1
    return max(candidates, key=steps)


def prune(weights_dir, keep) -> None:
    """Delete all but the newest ``keep`` epoch checkpoints (nothing when ``keep`` is None)."""
    if keep:
        for _, path in epoch_dirs(weights_dir)[:-keep]:
            shutil.rmtree(path, ignore_errors=True)


def read_history(weights_dir, done: dict) -> dict:
    """The run's history up to the checkpoint ``done`` ({'epoch', 'step'}), or a fresh one."""
    path = Path(weights_dir) / HISTORY_FILE
    try:
        history = json.loads(path.read_text()) if path.is_file() else {"epochs": [], "steps": []}
        history["steps"] = [r for r in history["steps"] if r["step"] <= done["step"]]
        history["epochs"] = [r for r in history["epochs"] if r["epoch"] <= done["epoch"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"the history {path} is corrupt ({type(err).__name__}: {err}); move it away to resume "
                        f"without the earlier curves.") from None
    return history


def write_history(weights_dir, history) -> None:
    """``history.json`` written atomically; a storage error is one sentence."""
    text = json.dumps(history)
    try:
        atomic_write(Path(weights_dir) / HISTORY_FILE, lambda f: f.write(text.encode()))
    except OSError as e:
        raise UserError(f"cannot write {Path(weights_dir) / HISTORY_FILE} ({e.strerror or e}); free some space "
                        f"or choose another --weights-dir, then continue with --resume.") from None
