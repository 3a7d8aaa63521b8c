"""The training loop: start or resume a run, train epoch by epoch, checkpoint after each.

Every step is one call of the compiled ``model.train_step``; metrics are read back from the
device once per ``log_every`` steps. Ctrl-C or SIGTERM finishes the current step and saves a resumable
checkpoint; a NaN loss stops the run naming the step.
"""
from __future__ import annotations

import math
import shutil
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path

import jax
import numpy as np

import imagedata
from analysis.evaluation import loss_on
from imagedata.batches import iterate_batches, num_batches, to_device
from model import Architecture, adamw, build, init_state, load_params
from system import signals
from system.errors import UserError, counted

from . import checkpoints
from .config import OPTIMIZER_FIELDS, TrainConfig
from .devices import device_layout, place_batch
from .rundir import RunDir


@dataclass
class Run:
    """A run in progress: its state, where it is, and what it trains on."""
    config: TrainConfig
    folder: RunDir
    vae: object            # model.VAE: the networks, built once
    state: object          # model.TrainState
    history: dict
    epoch: int             # epochs finished
    batch: int             # batches of the current epoch finished
    step: int
    total_steps: int
    steps_per_epoch: int
    images: object         # the training images, uint8 on the device
    val_images: object     # uint8 on the host, or None
    batch_sharding: object
    wall_before: float     # seconds trained before this process
    started: float
    hparams: object = None  # model.TrainHyperparams of the step (floats), its schedule included
    monitor: object = None  # training/monitor.py: sample grids, TensorBoard
    progress_bars: bool = True

    def lr_at(self, step: int) -> float:
        """The learning rate of the update after ``step`` updates (the schedule's, ``model/adamw.py``)."""
        decay = self.hparams.lr_decay_steps
        return self.hparams.adamw.lr * float(adamw.cosine_factor(step, math.inf if decay is None else decay))

    def elapsed(self) -> float:
        return self.wall_before + time.perf_counter() - self.started

    def progress(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch, "step": self.step, "wall_time": self.elapsed(),
                "train_images": int(self.images.shape[0])}


def train(config: TrainConfig, *, weights_dir="weights", resume=False, resume_from=None, overwrite=False,
          keep=None, progress=True, log=print, monitor=None, init_from=None, command=None) -> dict:
    """Run (or resume) training as ``config`` says. Returns a summary dict.

    ``init_from``: a parameter file (or checkpoint) a new run starts from instead of a random
    initialisation, with a fresh optimiser; its architecture is the run's. ``command``: the command
    line of this invocation, appended to the history's ``"commands"``.

    The weights folder is locked for the run (``RunDir.claim``). SIGINT and SIGTERM finish the
    current step and save; ``summary["signal"]`` is then the signal's number. Raises UserError
    with a one-sentence message when the run cannot start or go on.
    """
    folder = RunDir(weights_dir)
    resume = resume or resume_from is not None
    params = None
    if init_from is not None:  # read before the folder is claimed: a bad file must not cost an --overwrite
        if resume:
            raise UserError("--init-from starts a new run and --resume continues one; give one of them.")
        config, params = initial_params(config, folder.find_params(init_from))
    lock = folder.claim(resume=resume, overwrite=overwrite)
    try:
        run = start(config, folder, resume, resume_from, progress, log, params)
        if command is not None:
            run.history.setdefault("commands", []).append(command)
        if run.epoch >= config.run.epochs or run.step >= run.total_steps:
            flag = "--epochs" if run.epoch >= config.run.epochs else "--max-steps"  # whichever ended it
            log(f"Nothing to train: {folder.root} has trained {run.epoch} epochs ({run.step} steps) and this "
                f"run asks for {config.run.epochs} epochs ({run.total_steps} steps); give a larger {flag} to go on.")
        run.monitor = monitor  # training/monitor.py: sample grids, TensorBoard
        with signals.recorded() as stop:
            last_saved = train_epochs(run, stop, keep, log)
            if stop and 0 < run.batch < run.steps_per_epoch:  # keep what was learnt, resumable from this batch
                last_saved = save(run, run.folder.interrupted)
    finally:
        lock.release()
        if monitor is not None:
            monitor.close()
    if stop:
        saved = f"saved {last_saved} (continue with --resume)" if last_saved else "nothing new to save"
        log(f"Stopped by {signal.Signals(stop[0]).name} at step {run.step}; {saved}.")
    return {"step": run.step, "epoch": run.epoch, "checkpoint": str(last_saved) if last_saved else None,
            "history": run.history, "state": run.state, "interrupted": bool(stop),
            "signal": stop[0] if stop else None}


def train_epochs(run: Run, stop: list, keep, log) -> Path | None:
    """Train epoch after epoch until done, the step budget or a signal; returns the last checkpoint."""
    last_saved = None
    while run.epoch < run.config.run.epochs and run.step < run.total_steps and not stop:
        sums = train_epoch(run, stop, progress=run.progress_bars)
        if stop and run.batch < run.steps_per_epoch:
            break  # interrupted inside the epoch: saved by the caller
        last_saved = end_epoch(run, sums, keep, log)
        if run.batch:  # --max-steps ended the run inside this epoch
            break
    return last_saved


def save(run: Run, folder: Path) -> Path:
    """Save the run's checkpoint into ``folder`` and its history; returns ``folder``."""
    checkpoints.save_checkpoint(folder, run.state, run.config, run.progress())
    run.folder.write_history(run.history)
    return folder


def initial_params(config: TrainConfig, path) -> tuple[TrainConfig, dict]:
    """(config with the architecture of the parameter file ``path``, its parameters); UserError when
    an explicit --channels/--latent-dim asks for another architecture."""
    params, _ = load_params(path)
    arch = Architecture.of(params)
    asked = {k: v for k, v in config.flat().items() if k in ("channels", "latent_dim") and k in config.explicit}
    if any(getattr(arch, k) != v for k, v in asked.items()):
        raise UserError(f"--init-from {path} is of the architecture {arch}, not the one the flags ask for; drop "
                        f"--channels/--latent-dim or pick other parameters.")
    return config.with_flat(**arch.as_dict()), params


def start(config: TrainConfig, folder: RunDir, resume: bool, resume_from, progress: bool, log,
          params=None) -> Run:
    """A fresh run of ``config`` (from ``params`` when given, else a random initialisation), or a
    checkpoint's run (``resume``): ``resume_from``, else the newest in ``folder``."""
    if resume:
        checkpoint = Path(resume_from) if resume_from is not None else folder.resume_point()
        if not folder.owns(checkpoint) and folder.run_files():
            raise UserError(f"--resume-from {checkpoint} is a checkpoint of another run folder, and {folder.root} "
                            f"already holds a run; resume it into an empty --weights-dir or into "
                            f"{checkpoint.parent} itself.")
        if not RunDir.is_complete(checkpoint):
            raise UserError(f"{checkpoint} is not a complete checkpoint folder ({', '.join(RunDir.CHECKPOINT_FILES)}); "
                            f"pick an epoch_N/ or interrupted/ folder of a run.")
        saved = checkpoints.saved_config(checkpoint)
        config = config.resumed_from(saved, checkpoint)
        mine, theirs = config.flat(), saved.flat()
        changed = {k: mine[k] for k in OPTIMIZER_FIELDS + ("lr_schedule",) if mine[k] != theirs[k]}
    run_options = config.run
    batch_sharding, replicated = device_layout(run_options.batch_size)
    train_images = imagedata.load(config.data, "train", progress=progress)
    val_images = None
    if run_options.val_images:
        val_images = imagedata.load(replace(config.data, limit=run_options.val_images), "val", progress=progress)
    steps_per_epoch = num_batches(len(train_images), run_options.batch_size)
    if steps_per_epoch == 0:
        raise UserError(f"The training set has {counted(len(train_images), 'image')}, fewer than one batch of "
                        f"{run_options.batch_size}; lower --batch-size or raise --limit.")
    vae = build(config.model)
    step_hparams = config.step_hparams(run_options.epochs * steps_per_epoch)  # the schedule spans the planned run
    if resume:
        state, done = checkpoints.load_state(checkpoint, config)
        state = state._replace(hparams=step_hparams.as_arrays())
        trained_on = done.get("train_images")
        if (trained_on is not None and trained_on != len(train_images)) or done["batch"] >= steps_per_epoch:
            raise UserError(f"the training set now has {len(train_images):,} images"
                            + (f" but {checkpoint} was trained on {trained_on:,}" if trained_on else
                               f", too few for the {done['batch']} batches {checkpoint} had done of its epoch")
                            + "; resume with the data it was trained on, or start a new run in another --weights-dir "
                            "(--init-from keeps what it learnt).")
        history = folder.read_history(done)
        aside = folder.set_aside_newer(checkpoint)  # a branch: the old checkpoints after it must not mix in
        if aside:
            log(f"Moved {', '.join(p.name for p in aside)} (newer than {checkpoint.name}) to {aside[0].parent}: "
                f"the run now continues from {checkpoint.name}.")
        if changed:  # optimiser settings changed on resume: from this step on
            history.setdefault("changes", []).append({"step": done["step"], **changed})
        log(f"Resuming from {checkpoint} at epoch {done['epoch']}, step {done['step']}"
            + (f", with {', '.join(f'{k} {v}' for k, v in changed.items())}." if changed else "."))
    else:
        params = vae.init(jax.random.PRNGKey(run_options.seed)) if params is None else params
        state = init_state(params, step_hparams)
        done = {"epoch": 0, "batch": 0, "step": 0, "wall_time": 0.0}
        history = {"epochs": [], "steps": []}
    history["config"] = config.as_dict()
    if replicated is not None:
        state = jax.device_put(state, replicated)
    total_steps = run_options.epochs * steps_per_epoch
    if run_options.max_steps is not None:
        total_steps = min(total_steps, run_options.max_steps)
    log(f"Training on {len(train_images):,} {config.data.dataset} images, {steps_per_epoch} steps of "
        f"{run_options.batch_size} per epoch, {total_steps} steps in all, on {jax.device_count()} "
        f"{jax.devices()[0].platform} device(s).")
    return Run(config, folder, vae, state, history, done["epoch"], done["batch"], done["step"], total_steps,
               steps_per_epoch, to_device(train_images, sharding=replicated), val_images, batch_sharding,
               done.get("wall_time", 0.0), time.perf_counter(), hparams=step_hparams, progress_bars=progress)


def train_epoch(run: Run, stop: list, progress: bool) -> np.ndarray:
    """Train the rest of the current epoch (or until ``stop`` or the step budget); returns the
    sums of (loss, recon, kl) over its steps and their count."""
    cfg = run.config.run
    base_key = jax.random.PRNGKey(cfg.seed)
    shuffle_key = jax.random.fold_in(jax.random.fold_in(base_key, 1), run.epoch)
    bar = _progress_bar(min(run.steps_per_epoch, run.total_steps - run.step + run.batch),
                        f"epoch {run.epoch + 1}/{cfg.epochs}", progress, initial=run.batch)
    pending, window_start = [], time.perf_counter()
    sums = np.zeros(4)
    for i, batch in enumerate(iterate_batches(run.images, cfg.batch_size, shuffle_key)):
        if i < run.batch:
            continue
        noise_key = jax.random.fold_in(jax.random.fold_in(base_key, 2), run.step)
        run.state, metrics = run.vae.train_step(run.state, place_batch(batch, run.batch_sharding), noise_key,
                                                compute_dtype=cfg.compute_dtype)
        run.step, run.batch = run.step + 1, i + 1
        pending.append((run.step, metrics))
        end = run.batch == run.steps_per_epoch or run.step >= run.total_steps
        if len(pending) >= max(1, cfg.log_every) or end or stop:
            sums += record_steps(run, pending, window_start, bar)
            if run.monitor is not None:
                run.monitor.on_steps(run, len(pending))
            pending, window_start = [], time.perf_counter()
        if end or stop:
            break
    if bar is not None:
        bar.close()
    return sums


def record_steps(run: Run, pending: list, window_start: float, bar) -> np.ndarray:
    """Read a window of step metrics back from the device (one sync) into the history; the rate is
    that of the window since ``window_start``, measured once the steps have finished."""
    fetched = jax.device_get([m for _, m in pending])
    rate = len(pending) * run.config.run.batch_size / max(time.perf_counter() - window_start, 1e-9)
    sums = np.zeros(4)
    for (step, _), m in zip(pending, fetched):
        if not all(math.isfinite(float(m[k])) for k in ("loss", "recon", "kl")):
            latest = run.folder.latest_saved()
            kept = f"the last checkpoint, {latest}, is kept" if latest else "no checkpoint was saved before it"
            raise UserError(f"The loss became {float(m['loss'])} at step {step}, so training stopped and {kept}; "
                            f"try a lower --lr, a --clip-norm or a smaller --beta, or check the data.")
        run.history["steps"].append({"step": step, "epoch": run.epoch + 1, "loss": float(m["loss"]),
                                     "recon": float(m["recon"]), "kl": float(m["kl"]),
                                     "grad_norm": float(m["grad_norm"]), "lr": run.lr_at(step - 1),
                                     "wall_time": run.elapsed(), "images_per_s": rate})
        sums += [float(m["loss"]), float(m["recon"]), float(m["kl"]), 1]
    if bar is not None:
        last = run.history["steps"][-1]
        bar.update(len(pending))
        bar.set_postfix(loss=f"{last['loss']:.2f}", recon=f"{last['recon']:.2f}", kl=f"{last['kl']:.2f}",
                        img_s=f"{rate:.0f}")
    return sums


def end_epoch(run: Run, sums, keep, log) -> Path:
    """Validate, record the epoch, save its checkpoint and the history; returns the checkpoint folder."""
    partial = run.batch < run.steps_per_epoch
    loss, recon, kl, count = sums
    rates = [r["images_per_s"] for r in run.history["steps"] if r["epoch"] == run.epoch + 1]
    record = {"epoch": run.epoch + 1, "step": run.step, "train_loss": loss / count, "train_recon": recon / count,
              "train_kl": kl / count, "wall_time": run.elapsed(),
              "images_per_s": float(np.median(rates)) if rates else float("nan")}
    if partial:
        record["partial"] = True
    if run.val_images is not None and len(run.val_images):
        val = loss_on(run.state.params, run.val_images, run.config.hparams.beta)
        record.update(val_loss=val["loss"], val_recon=val["recon"], val_kl=val["kl"])
    run.history["epochs"].append(record)
    folder = run.folder.epoch_folder(run.epoch + 1)
    if not partial:
        run.epoch, run.batch = run.epoch + 1, 0
    save(run, folder)
    if run.monitor is not None:  # after the save: nothing the grid's writing meets can cost the epoch
        run.monitor.on_epoch(run, record)
    shutil.rmtree(run.folder.interrupted, ignore_errors=True)
    run.folder.prune(keep)
    val_text = (f", val loss {record['val_loss']:.2f} (recon {record['val_recon']:.2f}, kl {record['val_kl']:.2f})"
                if "val_loss" in record else "")
    log(f"epoch {record['epoch']}{' (partial)' if partial else ''}: train loss {record['train_loss']:.2f} "
        f"(recon {record['train_recon']:.2f}, kl {record['train_kl']:.2f}){val_text}, "
        f"{record['images_per_s']:.0f} img/s -> {folder}")
    return folder


def _progress_bar(total, desc, enabled, initial=0):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True, leave=True)
