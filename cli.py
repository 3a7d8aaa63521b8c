"""What every command shares: its flags, loading a checkpoint and held-out images, and ``run_main``.

``run_main`` sets up the process (``system/heap.py``), runs the command and turns a ``UserError``
into one sentence on stderr and exit code ``EXIT_USER_ERROR`` instead of a traceback.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import imagedata
from imagedata import celeba, cache
from model import DEFAULT_BETA, architecture, load_checkpoint
from system import heap
from system.errors import EXIT_INTERRUPTED, EXIT_USER_ERROR, UserError

DEFAULT_WEIGHTS_DIR = "weights"
DEFAULT_OUT_DIR = "results"
DEFAULT_DATASET = "faces"  # the embedded default of every analysis script
DATA_FLAGS = ("dataset", "data_dir", "crop", "cache_dir", "limit", "split_file")


# --------------------------------------------------------------------------- flags

def int_at_least(minimum: int):
    """An argparse ``type`` for whole numbers >= ``minimum``, with a one-line error otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, not {text!r}")
        return value
    parse.__name__ = f"int>={minimum}"
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def finite_float(low: float, *, low_open=False, high: float | None = None):
    """An argparse ``type`` for finite numbers >= ``low`` (> with ``low_open``) and < ``high``."""
    if high is not None:
        wanted = f"a number in [{low:g}, {high:g})"
    else:
        wanted = f"a finite number {'>' if low_open else '>='} {low:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        ok = math.isfinite(value) and (value > low if low_open else value >= low)
        if not ok or (high is not None and value >= high):
            raise argparse.ArgumentTypeError(f"expected {wanted}, not {text!r}")
        return value
    parse.__name__ = "number"
    return parse


non_negative_float = finite_float(0.0)
positive_float = finite_float(0.0, low_open=True)
unit_interval = finite_float(0.0, high=1.0)  # Adam's betas: [0, 1)


def crop_type(text):
    """argparse ``type`` of --crop."""
    try:
        return imagedata.parse_crop(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def make_parser(doc: str) -> argparse.ArgumentParser:
    """A parser whose description is the script's module docstring (examples included)."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_data_arguments(parser, *, default_dataset=DEFAULT_DATASET, from_checkpoint=False) -> None:
    """--dataset, --data-dir, --crop, --cache-dir and --limit.

    ``from_checkpoint``: absent flags stay absent, so the checkpoint's recorded options apply.
    """
    recorded = "as recorded in the checkpoint, else " if from_checkpoint else ""
    unset = {"default": argparse.SUPPRESS} if from_checkpoint else {}
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", choices=imagedata.DATASETS, **(unset or {"default": default_dataset}),
                       help=f"which images: the embedded procedural {', '.join(imagedata.GENERATED)} "
                            f"(no download), celeba, or folder: any folder of your own JPEG/PNG/WebP images "
                            f"given by --data-dir (default: {recorded}{default_dataset})")
    group.add_argument("--data-dir", metavar="DIR", **(unset or {"default": None}),
                       help=f"for --dataset folder: the folder of images, searched recursively; for celeba: "
                            f"the folder holding CelebA (img_align_celeba/, img_align_celeba.zip or the Kaggle layout) "
                            f"and list_eval_partition.txt/.csv (default: {recorded}${celeba.DATA_DIR_ENV}, "
                            f"else ./{celeba.DEFAULT_DATA_DIR}, else a {celeba.KAGGLE_INPUT}/*/ folder holding CelebA)")
    group.add_argument("--crop", type=crop_type, metavar="PX|square|none", **(unset or {"default": imagedata.AUTO_CROP}),
                       help=f"side of the centre square cropped from each image before resizing, 'square' for the "
                            f"largest centred square, or 'none' to resize the whole frame (default: {recorded}"
                            f"{imagedata.DEFAULT_CROP} for celeba, square for folder)")
    group.add_argument("--cache-dir", metavar="DIR", **(unset or {"default": None}),
                       help=f"folder for the decoded CelebA caches (default: {recorded}./{cache.DEFAULT_CACHE_DIR})")
    group.add_argument("--limit", type=positive_int, metavar="N", **(unset or {"default": None}),
                       help=f"use at most the first N images of each split (default: {recorded}all)")
    group.add_argument("--split-file", metavar="FILE", **(unset or {"default": None}),
                       help=f"for --dataset folder: lines 'relative/path.jpg train|val|test' naming each image's split "
                            f"(default: {recorded}by a hash of each path, 90/5/5, stable as images are added)")


def add_checkpoint_arguments(parser, *, split=True) -> None:
    """--weights, --weights-dir, --out-dir and the data flags (defaulting to the checkpoint's)."""
    group = parser.add_argument_group("checkpoint")
    group.add_argument("--weights", default=None, metavar="PATH",
                       help="a params.npz file or an epoch_N folder to load (default: the newest "
                            "epoch_N/ in --weights-dir)")
    group.add_argument("--weights-dir", default=DEFAULT_WEIGHTS_DIR, metavar="DIR",
                       help=f"folder of the training run, holding epoch_N/params.npz (default: {DEFAULT_WEIGHTS_DIR})")
    add_out_argument(parser)
    add_data_arguments(parser, from_checkpoint=True)
    if split:
        group = next(g for g in parser._action_groups if g.title == "data")
        group.add_argument("--split", choices=("test", "val", "train"), default="test",
                           help="split the images come from, held out unless train (default: test)")


def add_out_argument(parser) -> None:
    parser.add_argument("--out-dir", default=DEFAULT_OUT_DIR, metavar="DIR",
                        help=f"folder the results are written to (default: {DEFAULT_OUT_DIR})")


# what a checkpoint's recorded data options may choose: not where caches are written (a
# checkpoint from elsewhere must not make a script write into a folder it names)
RECORDED_DATA_FLAGS = ("dataset", "data_dir", "crop", "limit")


def data_options(args, recorded=None) -> dict:
    """The data options: the recorded ones (a checkpoint's, all but ``cache_dir``), overridden by the flags given."""
    options = {"dataset": DEFAULT_DATASET, "data_dir": None, "crop": imagedata.AUTO_CROP,
               "cache_dir": None, "limit": None, "split_file": None}
    if isinstance(recorded, dict):
        options.update({k: v for k, v in recorded.items() if k in RECORDED_DATA_FLAGS})
        if getattr(args, "dataset", None) == "folder" != options["dataset"]:  # one's own images: their defaults
            options.update(crop=imagedata.AUTO_CROP, data_dir=None, limit=None, split_file=None)
    options.update({k: getattr(args, k) for k in DATA_FLAGS if hasattr(args, k)})
    for key in ("data_dir", "cache_dir", "split_file"):
        options[key] = None if options[key] is None else str(options[key])
    return options


# --------------------------------------------------------------------------- checkpoint and images

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
        return float(value) if value is not None else DEFAULT_BETA

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
    """The checkpoint named by ``--weights``/``--weights-dir``; UserError when there is none."""
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


def load_images(options: dict, split: str, n: int, checkpoint: Checkpoint | None = None) -> Images:
    """The first ``n`` images of ``split`` (all of them when the split is smaller).

    Generated datasets make only ``n``; decoded ones are read from their cache with the recorded
    ``limit`` (so the same cache is reused) and cut to ``n``. With ``checkpoint``, the images must
    have the size its model takes.
    """
    if options.get("dataset") in imagedata.GENERATED:
        limit = options.get("limit")
        images = imagedata.load_from_options(options, split, limit=n if limit is None else min(n, int(limit)),
                                             progress=False)
    else:
        images = imagedata.load_from_options(options, split)
    if len(images) == 0:
        hint = " (a small folder may have none; try --split train or --split-file)" if options.get("dataset") == "folder" else ""
        raise UserError(f"the {options.get('dataset')} {split} split holds no images{hint}.")
    if checkpoint is not None:
        arch = architecture(checkpoint.params)
        want = (arch["in_channels"], arch["image_size"], arch["image_size"])
        if tuple(images.shape[1:]) != want:
            raise UserError(f"the images are {tuple(images.shape[1:])} but {checkpoint.path} was trained on {want}: "
                            f"pick the dataset it was trained on with --dataset.")
    return Images(images[:n], str(options.get("dataset")), split, n, min(n, len(images)))


def load_for_script(args, n: int, *, note=True) -> tuple[Checkpoint, Images]:
    """The checkpoint of ``args`` and the first ``n`` images of ``args.split``, noting a short split."""
    checkpoint = load(args)
    data = load_images(data_options(args, checkpoint.config.get("data")), args.split, n, checkpoint)
    if note and data.note:
        print(f"note: {data.note}.", file=sys.stderr)
    return checkpoint, data


# --------------------------------------------------------------------------- running

def run_main(work, argv=None) -> int:
    """Call ``work(argv)`` and return its exit code (an int it returns, else 0); a ``UserError``
    becomes ``error: ...`` on stderr and ``EXIT_USER_ERROR``, Ctrl-C one line and ``EXIT_INTERRUPTED``."""
    heap.keep_freed_memory()  # before the first computation (system/heap.py)
    try:
        code = work(argv)
    except UserError as err:
        message = str(err).strip() or type(err).__name__
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:  # Ctrl-C outside training's own handling (loading data, compiling)
        print("interrupted (Ctrl-C) before anything was saved; nothing half-written is left.", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code if isinstance(code, int) else 0
