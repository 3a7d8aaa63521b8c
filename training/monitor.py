"""Watching a run: grids of reconstructions and prior samples, and optional TensorBoard logs.

After every epoch (and every ``sample_every`` steps when asked) ``Monitor`` writes
``<weights_dir>/samples/epoch_003.png`` (or ``step_000120.png``): the first validation images
(training images when there are none), their reconstructions decoded from μ, and decodes of a
fixed batch of latent codes z ~ N(0, I), the same at every epoch, so one sees the model improve.

With ``tensorboard`` (a log folder; needs the ``tensorboardX`` package, the ``[tensorboard]``
extra) the losses, gradient norm, images/s and the same grids are logged for TensorBoard.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from system.errors import UserError

NUM_IMAGES = 8  # validation images (and reconstructions) per grid, one row each
NUM_SAMPLES = 16  # prior samples, two rows of 8
TENSORBOARD_MISSING = ('--tensorboard needs the tensorboardX package; install it with '
                       'pip install -e ".[tensorboard]" (or pip install tensorboardX).')


def tensorboard_writer(logdir):
    """A tensorboardX SummaryWriter on ``logdir``; UserError in one sentence when it is not installed
    or the folder cannot be made."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise UserError(TENSORBOARD_MISSING) from None
    try:
        Path(logdir).mkdir(parents=True, exist_ok=True)
        return SummaryWriter(logdir=str(logdir))
    except OSError as e:
        raise UserError(f"cannot write TensorBoard logs to --tensorboard {logdir} ({e.strerror or e}); "
                        f"give a folder that can be written.") from None


class Monitor:
    """Sample grids (``samples``: on/off, ``sample_every``: steps between extra grids) and TensorBoard."""

    def __init__(self, *, samples: bool = True, sample_every: int | None = None, tensorboard=None):
        self.samples = samples
        self.sample_every = sample_every
        self.writer = tensorboard_writer(tensorboard) if tensorboard else None
        self._last_step_grid = None

    # ---------------------------------------------------------------- hooks called by training/loop.py

    def on_steps(self, run, count: int) -> None:
        """After ``count`` new step records were appended to ``run.history['steps']``."""
        records = run.history["steps"][-count:] if count else []
        if self.writer is not None:
            for r in records:
                for name in ("loss", "recon", "kl", "grad_norm", "images_per_s"):
                    self.writer.add_scalar(f"train/{name}", r[name], r["step"])
        if self.sample_every and records:
            first, last = records[0]["step"], records[-1]["step"]
            if last // self.sample_every > (first - 1) // self.sample_every and last != self._last_step_grid:
                self._last_step_grid = last
                self.write_grid(run, f"step_{last:06d}", last)

    def on_epoch(self, run, record: dict) -> Path | None:
        """After an epoch's record was appended to the history: its grid and its scalars."""
        if self.writer is not None:
            for name, value in record.items():
                if name not in ("epoch", "step", "partial") and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"epoch/{name}", value, record["step"])
        return self.write_grid(run, f"epoch_{record['epoch']:03d}", record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    # ---------------------------------------------------------------- the grid

    def write_grid(self, run, name: str, step: int) -> Path | None:
        """The grid ``name`` into samples/ and TensorBoard; a storage error is a warning, never the run's end."""
        try:
            return self._write_grid(run, name, step)
        except OSError as e:
            print(f"warning: the sample grid {name} could not be written ({e.strerror or e}); training goes on.",
                  file=sys.stderr)
            return None

    def _write_grid(self, run, name: str, step: int) -> Path | None:
        if not self.samples and self.writer is None:
            return None
        images = run.val_images if run.val_images is not None and len(run.val_images) else None
        if images is None:
            import jax
            images = jax.device_get(run.images[:NUM_IMAGES])
        rows = sample_rows(run.state.params, np.asarray(images[:NUM_IMAGES]), run.config.run.seed)
        path = None
        if self.samples:
            from analysis.figures import image_grid
            path = run.folder.samples / f"{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            image_grid(rows, path, row_labels=["validation", "reconstruction", "prior", "prior"],
                       title=f"{name.replace('_', ' ')}: reconstructions (from μ) and fixed prior samples")
        if self.writer is not None:
            from analysis.figures import mosaic
            picture = np.clip(mosaic(rows, scale=1), 0, 1)
            self.writer.add_image("samples", picture, step, dataformats="HWC")
            self.writer.flush()
        return path


def fixed_latents(latent_dim: int, seed: int, n: int = NUM_SAMPLES) -> np.ndarray:
    """The same (n, latent_dim) draws z ~ N(0, I) at every epoch of a run."""
    return np.random.default_rng([seed, 17]).standard_normal((n, latent_dim), dtype=np.float32)


def sample_rows(params, images, seed: int) -> list[list]:
    """[originals, reconstructions, prior samples (2 rows)] as (3, H, W) images, 8 a row."""
    from analysis.evaluation import decode_latents, encode_images

    mu, _ = encode_images(params, images)
    z = fixed_latents(mu.shape[1], seed)
    decoded = decode_latents(params, np.concatenate([np.asarray(mu, np.float32), z]))  # one compiled shape
    recon, samples = decoded[:len(mu)], decoded[len(mu):]
    half = NUM_SAMPLES // 2
    return [list(images), list(recon), list(samples[:half]), list(samples[half:])]
