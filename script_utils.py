"""Shared command-line plumbing of the analysis scripts (evaluate, metrics, interpolate, plots).

* the ``--weights`` / ``--weights-dir`` / ``--out-dir`` flags and the data flags of
  ``load_data``, whose defaults come from the checkpoint's recorded data options;
* loading a checkpoint together with its epoch and β;
* loading the first N images of a held-out split;
* encoding and decoding large arrays in fixed-size chunks (one compilation per chunk size);
* ``run_main``: turns the one-sentence errors of the project into a message on stderr and
  exit code 1 instead of a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import load_data
from load_data import DataError
from model import CheckpointError, decode, encode, heap, load_checkpoint

DEFAULT_WEIGHTS_DIR = "weights"
DEFAULT_OUT_DIR = "results"
DEFAULT_BATCH_SIZE = 250
DATA_FLAGS = ("dataset", "data_dir", "crop", "cache_dir", "limit")


class ScriptError(Exception):
    """A problem with the command line or its inputs, described in one sentence."""


# --------------------------------------------------------------------------- #
# Arguments
# --------------------------------------------------------------------------- #


positive_int = load_data.positive_int
non_negative_int = load_data.non_negative_int


def make_parser(doc: str) -> argparse.ArgumentParser:
    """A parser whose description is the script's module docstring (examples included)."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_weights_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("checkpoint")
    group.add_argument("--weights", default=None, metavar="PATH",
                       help="a params.npz file or an epoch_N folder to load (default: the newest "
                            "epoch_N/ in --weights-dir)")
    group.add_argument("--weights-dir", default=DEFAULT_WEIGHTS_DIR, metavar="DIR",
                       help=f"folder of the training run, holding epoch_N/params.npz (default: {DEFAULT_WEIGHTS_DIR})")


def add_out_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out-dir", default=DEFAULT_OUT_DIR, metavar="DIR",
                        help=f"folder the results are written to (default: {DEFAULT_OUT_DIR})")


def add_data_flags(parser: argparse.ArgumentParser, *, split: bool = True) -> None:
    """The data flags of ``load_data``; unset ones fall back to the checkpoint's data options."""
    load_data.add_data_arguments(parser)
    for action in parser._actions:  # absent flags stay absent, so the checkpoint's options apply
        if action.dest not in DATA_FLAGS:
            continue
        action.default = argparse.SUPPRESS
        if action.help:
            action.help = re.sub(r"\(default: (.*)\)$", r"(default: as recorded in the checkpoint, else \1)",
                                 action.help)
    if split:
        group = next((g for g in parser._action_groups if g.title == "data"), parser)
        group.add_argument("--split", choices=("test", "val"), default="test",
                            help="held-out split the images come from (default: test)")


def add_checkpoint_arguments(parser: argparse.ArgumentParser, *, split: bool = True) -> None:
    """--weights, --weights-dir, --out-dir and the data flags."""
    add_weights_arguments(parser)
    add_out_argument(parser)
    add_data_flags(parser, split=split)


def data_options(args, config: dict) -> dict:
    """The checkpoint's recorded data options, overridden by the data flags given on the command line."""
    options = {"dataset": "shapes", "data_dir": None, "crop": load_data.DEFAULT_CROP, "cache_dir": None, "limit": None}
    recorded = config.get("data") if isinstance(config, dict) else None
    if isinstance(recorded, dict):
        options.update({k: v for k, v in recorded.items() if k in DATA_FLAGS})
    options.update({k: getattr(args, k) for k in DATA_FLAGS if hasattr(args, k)})
    return options


# --------------------------------------------------------------------------- #
# Checkpoint and data
# --------------------------------------------------------------------------- #


@dataclass
class Checkpoint:
    params: dict
    config: dict
    path: Path
    epoch: int | None

    @property
    def beta(self) -> float:
        train = self.config.get("train") if isinstance(self.config, dict) else None
        value = train.get("beta") if isinstance(train, dict) else None
        return float(value) if value is not None else 1.0

    @property
    def latent_dim(self) -> int:
        return int(self.params["encoder.fc_mu.weight"].shape[0])

    def describe(self) -> str:
        return f"{self.path}" + ("" if self.epoch is None else f" (epoch {self.epoch})")


def epoch_of(path) -> int | None:
    """N of a ``.../epoch_N/params.npz`` path, else None."""
    for part in (Path(path).parent.name, Path(path).name):
        match = re.fullmatch(r"epoch_(\d+)", part)
        if match:
            return int(match.group(1))
    return None


def load(args) -> Checkpoint:
    """The checkpoint named by ``--weights``/``--weights-dir``; CheckpointError when there is none."""
    params, config, path = load_checkpoint(args.weights, args.weights_dir)
    return Checkpoint(params, config if isinstance(config, dict) else {}, Path(path), epoch_of(path))


@dataclass
class Images:
    images: np.ndarray  # uint8 (N, 3, H, W)
    dataset: str
    split: str
    requested: int
    available: int

    @property
    def note(self) -> str | None:
        if self.available < self.requested:
            return (f"the {self.dataset} {self.split} split has only {self.available} images, "
                    f"so all {self.available} were used instead of {self.requested}")
        return None


def load_images(options: dict, split: str, n: int) -> Images:
    """The first ``n`` images of ``split`` (all of them when the split is smaller).

    The shapes are generated, so only ``n`` are made; CelebA is read from its cache with the
    recorded ``limit`` (so the same cache is reused) and then cut to ``n``.
    """
    if options.get("dataset") == "shapes":
        limit = options.get("limit")
        images = load_data.load_from_options(options, split, limit=n if limit is None else min(n, int(limit)),
                                             progress=False)
    else:
        images = load_data.load_from_options(options, split)
    if len(images) == 0:
        raise DataError(f"the {options.get('dataset')} {split} split holds no images.")
    return Images(images[:n], str(options.get("dataset")), split, n, min(n, len(images)))


def check_image_size(checkpoint: Checkpoint, images: np.ndarray) -> None:
    from model import architecture
    arch = architecture(checkpoint.params)
    want = (arch["in_channels"], arch["image_size"], arch["image_size"])
    if tuple(images.shape[1:]) != want:
        raise ScriptError(f"the images are {tuple(images.shape[1:])} but {checkpoint.path} was trained on {want}: "
                          f"pick the dataset it was trained on with --dataset.")


# --------------------------------------------------------------------------- #
# Chunked encode / decode
# --------------------------------------------------------------------------- #


def chunks(n: int, batch_size: int = DEFAULT_BATCH_SIZE):
    """(start, stop, size) covering ``range(n)``; every chunk is padded to the same ``size``."""
    size = max(1, min(batch_size, n))
    for start in range(0, n, size):
        yield start, min(start + size, n), size


def pad_to(x: np.ndarray, size: int) -> np.ndarray:
    x = np.asarray(x)
    if len(x) == size:
        return x
    return np.concatenate([x, np.zeros((size - len(x),) + x.shape[1:], x.dtype)])


def encode_all(params, images, batch_size: int = DEFAULT_BATCH_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(mu, logvar) as float32 NumPy arrays (N, D) of uint8 or [0, 1] images (N, 3, H, W)."""
    mus, logvars = [], []
    for start, stop, size in chunks(len(images), batch_size):
        mu, logvar = encode(params, pad_to(images[start:stop], size))
        mus.append(np.asarray(mu)[: stop - start])
        logvars.append(np.asarray(logvar)[: stop - start])
    if not mus:
        d = int(params["encoder.fc_mu.weight"].shape[0])
        return np.zeros((0, d), np.float32), np.zeros((0, d), np.float32)
    return np.concatenate(mus), np.concatenate(logvars)


def decode_all(params, z, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """Decoded images (N, 3, H, W) float32 in [0, 1] of latent codes (N, D)."""
    z = np.asarray(z, np.float32)
    out = [np.asarray(decode(params, pad_to(z[start:stop], size)))[: stop - start]
           for start, stop, size in chunks(len(z), batch_size)]
    return np.clip(np.concatenate(out), 0.0, 1.0)


def as_float(images) -> np.ndarray:
    """uint8 images -> float32 in [0, 1]; float images pass through (clipped)."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return np.clip(images.astype(np.float32), 0.0, 1.0)


# --------------------------------------------------------------------------- #
# Output and error handling
# --------------------------------------------------------------------------- #


def write_json(path, obj) -> Path:
    """Write ``obj`` as indented JSON through a temporary file renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return path


EXPECTED_ERRORS = (CheckpointError, DataError, ScriptError)


def run_main(work, argv=None, *, errors=()) -> int:
    """Call ``work(argv)``; a one-sentence error becomes ``error: ...`` on stderr and exit code 1."""
    heap.keep_freed_memory()  # before the first computation (model/heap.py)
    try:
        work(argv)
    except EXPECTED_ERRORS + tuple(errors) as err:
        message = str(err).strip() or type(err).__name__
        print(f"error: {message}", file=sys.stderr)
        return 1
    return 0
