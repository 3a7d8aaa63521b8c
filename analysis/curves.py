"""Loss curves of a training run: the β-VAE loss, its reconstruction term and its KL term.

Three panels sharing the epoch axis, each with the training and validation values at the end of
every epoch; per-step records, when the history holds them, are drawn faintly behind the training
curve at their fraction of the epoch.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from system.errors import UserError

from .figures import save_figure

CURVES_FILE = "loss_curves.png"
FIGSIZE = (8.0, 9.0)  # inches
DPI = 120             # -> 960 x 1080 pixels
PANELS = (
    ("loss", "β-VAE loss (recon + β·KL)", "train_loss", "val_loss"),
    ("recon", "reconstruction (Σ sq. error / image)", "train_recon", "val_recon"),
    ("kl", "KL(q(z|x) ‖ p(z)) / image (nats)", "train_kl", "val_kl"),
)
TRAIN_COLOR = "#1f4e9c"
VAL_COLOR = "#d0641a"


def load_history(path) -> dict:
    """The history dict with a non-empty 'epochs' list; UserError otherwise."""
    path = Path(path)
    hint = "train a model first with `python train.py --dataset faces`, or pass --history PATH"
    if not path.is_file():
        raise UserError(f"No training history at {path}: {hint}.")
    try:
        history = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"The training history {path} is not readable JSON ({err}); {hint}.") from None
    if not isinstance(history, dict) or not isinstance(history.get("epochs"), list) or not history["epochs"]:
        raise UserError(f"The training history {path} holds no finished epoch yet: {hint}.")
    if not all(isinstance(e, dict) and _number(e.get("epoch")) is not None for e in history["epochs"]):
        raise UserError(f"The training history {path} has epoch records without an epoch number; {hint}.")
    return history


def _number(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def series(records, key_x, key_y) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the records holding finite numbers under both keys."""
    points = [(_number(r.get(key_x)), _number(r.get(key_y))) for r in records if isinstance(r, dict)]
    points = [(x, y) for x, y in points if x is not None and y is not None]
    if not points:
        return np.zeros(0), np.zeros(0)
    x, y = np.array(points).T
    return x, y


def step_positions(epochs, steps) -> np.ndarray:
    """Fractional epoch of each per-step record (epoch e spans (e - 1, e]).

    Uses the global step at the end of each epoch when the epoch records hold it, else the
    order of the steps within their epoch.
    """
    ends = sorted((_number(e.get("step")), _number(e.get("epoch"))) for e in epochs)
    ends = [(s, e) for s, e in ends if s is not None and e is not None]
    step_numbers = [_number(s.get("step")) for s in steps]
    if len(ends) == len(epochs) and all(s is not None for s in step_numbers):
        first_epoch = ends[0][1]
        xs = [0.0] + [s for s, _ in ends]
        ys = [first_epoch - 1.0] + [e for _, e in ends]
        return np.interp(step_numbers, xs, ys, right=np.nan)
    positions = np.full(len(steps), np.nan)
    by_epoch: dict[float, list[int]] = {}
    for i, s in enumerate(steps):
        e = _number(s.get("epoch"))
        if e is not None:
            by_epoch.setdefault(e, []).append(i)
    for e, members in by_epoch.items():
        for k, i in enumerate(members):
            positions[i] = e - 1.0 + (k + 1) / len(members)
    return positions


def loss_curves(history: dict, path, *, title: str = "Training curves", log: bool = False,
                show_steps: bool = True) -> Path:
    """Draw the three panels of ``history`` into ``path`` (a PNG of FIGSIZE x DPI pixels)."""
    epochs = history["epochs"]
    steps = [s for s in history.get("steps") or [] if isinstance(s, dict)] if show_steps else []
    step_x = step_positions(epochs, steps) if steps else np.zeros(0)
    fig = Figure(figsize=FIGSIZE, dpi=DPI, facecolor="white", layout="constrained")
    axes = fig.subplots(len(PANELS), 1, sharex=True)
    for ax, (step_key, label, train_key, val_key) in zip(axes, PANELS):
        if len(step_x):
            y = np.array([_number(s.get(step_key)) if _number(s.get(step_key)) is not None else np.nan
                          for s in steps])
            keep = np.isfinite(step_x) & np.isfinite(y)
            if log:
                keep &= y > 0
            if keep.any():
                ax.plot(step_x[keep], y[keep], color=TRAIN_COLOR, alpha=0.22, linewidth=0.7,
                        label="train (per step)", zorder=1)
        for key, name, color, marker in ((train_key, "train", TRAIN_COLOR, "o"), (val_key, "validation", VAL_COLOR, "s")):
            x, y = series(epochs, "epoch", key)
            if log:
                x, y = x[y > 0], y[y > 0]
            if len(x):
                ax.plot(x, y, color=color, marker=marker, markersize=4, linewidth=1.8, label=name, zorder=3)
        ax.set_ylabel(label, fontsize=10)
        ax.grid(True, alpha=0.3, linewidth=0.6)
        if log:
            ax.set_yscale("log")
        if not ax.has_data():
            ax.text(0.5, 0.5, "no values recorded", transform=ax.transAxes, ha="center", va="center",
                    color="gray")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        axes[0].legend(handles, labels, fontsize=9, frameon=False, loc="best")
    axes[-1].set_xlabel("epoch")
    first = min(_number(e.get("epoch")) for e in epochs)
    last = max(_number(e.get("epoch")) for e in epochs)
    low = first - 1.0 if np.isfinite(step_x).any() else first - 0.25
    axes[-1].set_xlim(low, last + 0.25)
    if last - low <= 20:
        axes[-1].set_xticks(np.arange(math.ceil(low), math.floor(last) + 1))
    fig.suptitle(title, fontsize=12)
    return save_figure(fig, path)
