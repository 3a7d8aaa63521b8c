"""What every command shares: its flags, loading a checkpoint and held-out images, and ``run_main``.

``run_main`` sets up the process (``system/heap.py``), runs the command and turns a ``UserError``
into one sentence on stderr and exit code ``EXIT_USER_ERROR`` instead of a traceback.
"""
from __future__ import annotations

import argparse
import errno
import os
import re
import signal
import sys
import tempfile
import threading
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

import imagedata
from imagedata import DataOptions, celeba, cache
from system import heap
from system.arguments import positive_int
from system.errors import EXIT_INTERRUPTED, EXIT_USER_ERROR, UserError, counted
from training import RunDir, TrainConfig, load_run

DEFAULT_WEIGHTS_DIR = "weights"
DEFAULT_OUT_DIR = "results"
DEFAULT_DATASET = "faces"  # the embedded default of every analysis script
STORAGE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)
SHIPPED_MODEL = Path(__file__).resolve().parent / "pretrained" / "faces"  # a model trained on the faces (its README)


# --------------------------------------------------------------------------- flags

def crop_type(text):
    """argparse ``type`` of --crop."""
    try:
        return imagedata.parse_crop(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def make_parser(doc: str) -> argparse.ArgumentParser:
    """A parser whose description is the script's module docstring (examples included)."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_data_arguments(parser, *, default_dataset=DEFAULT_DATASET, from_checkpoint=False):
    """--dataset, --data-dir, --crop, --cache-dir, --limit and --split-file; returns their group.

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
    return group


def add_weights_arguments(parser):
    """--weights and --weights-dir in a "checkpoint" group; returns the group."""
    group = parser.add_argument_group("checkpoint")
    group.add_argument("--weights", default=None, metavar="PATH",
                       help="a parameter file (.safetensors, or the .npz of earlier versions), a checkpoint folder "
                            "or a run folder (default: the newest epoch_N/ in --weights-dir)")
    group.add_argument("--weights-dir", default=DEFAULT_WEIGHTS_DIR, metavar="DIR",
                       help=f"folder of the training run, holding its epoch_N/ checkpoints (default: {DEFAULT_WEIGHTS_DIR})")
    return group


def add_checkpoint_arguments(parser, *, split=True) -> None:
    """--weights, --weights-dir, --out-dir and the data flags (defaulting to the checkpoint's)."""
    add_weights_arguments(parser)
    add_out_argument(parser)
    group = add_data_arguments(parser, from_checkpoint=True)
    if split:
        group.add_argument("--split", choices=imagedata.SPLITS, default="test",
                           help="split the images come from, held out unless train (default: test)")


def out_dir(path) -> Path:
    """``--out-dir``, checked before any work: a writable folder, or one that can be made (it is made
    when the first result is written). UserError in one sentence otherwise.

    The check writes a temporary file there, making the missing folders and removing them again:
    permissions alone do not say what a read-only or pseudo file system refuses."""
    path = Path(path)
    chain = [path, *path.absolute().parents]
    existing = next(p for p in chain if p.exists())
    problem = None
    if not existing.is_dir():
        problem = f"{existing} is not a folder"
    else:
        made = chain[:chain.index(existing)]  # deepest first
        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as e:
            problem = e.strerror or str(e)
        for folder in made:
            try:
                folder.rmdir()
            except OSError:  # not made by us after all, or no longer empty: leave it
                break
    if problem:
        raise UserError(f"cannot write to --out-dir {path} ({problem}); choose another folder.")
    return path


def add_out_argument(parser) -> None:
    parser.add_argument("--out-dir", default=DEFAULT_OUT_DIR, metavar="DIR",
                        help=f"folder the results are written to (default: {DEFAULT_OUT_DIR})")


def data_options(args, recorded: DataOptions | None = None) -> DataOptions:
    """The data options: a checkpoint's recorded ones (not where it kept caches: a checkpoint from
    elsewhere must not make a script write into a folder it names), overridden by the flags given."""
    options = {"dataset": DEFAULT_DATASET}
    if recorded is not None and recorded.dataset is not None:
        options = recorded.as_dict()
        options.pop("cache_dir")
        if getattr(args, "dataset", None) == "folder" != recorded.dataset:  # one's own images: their defaults
            options.update(crop=imagedata.AUTO_CROP, data_dir=None, limit=None, split_file=None)
    options.update({k: getattr(args, k) for k in DataOptions.names() if hasattr(args, k)})
    check_file_flags(args, options["dataset"])
    return DataOptions(**options)


def check_file_flags(args, dataset) -> None:
    """UserError when a flag about image files (--data-dir, --crop, --cache-dir, --split-file) is
    given for a dataset that would not read it (ignored silently, a folder of one's own images
    would go unused)."""
    for name, datasets in imagedata.FILE_OPTIONS.items():
        flag = "--" + name.replace("_", "-")
        unset = imagedata.AUTO_CROP if name == "crop" else None  # the value of a flag not given
        if getattr(args, name, unset) != unset and dataset not in datasets:
            raise UserError(f"{flag} is read only with --dataset {' or '.join(datasets)}, not {dataset}: add "
                            f"--dataset {datasets[-1]} for a folder of your own images, or leave {flag} out.")


# --------------------------------------------------------------------------- checkpoint and images

@dataclass
class Checkpoint:
    params: dict
    config: TrainConfig
    path: Path

    @property
    def epoch(self) -> int | None:
        return RunDir.epoch_number(self.path)

    def describe(self) -> str:
        return f"{self.path}" + ("" if self.epoch is None else f" (epoch {self.epoch})")


def shipped_fallback(weights, weights_dir) -> Path | None:
    """The shipped model's folder when nothing else is asked for (no ``--weights``, the default
    ``--weights-dir``) and that folder holds no run yet; None otherwise."""
    if weights is not None or str(weights_dir) != DEFAULT_WEIGHTS_DIR or RunDir(weights_dir).latest_epoch() is not None:
        return None
    return SHIPPED_MODEL if RunDir.params_file(SHIPPED_MODEL).is_file() else None


def checkpoint_path(weights, weights_dir) -> Path:
    """The parameter file ``--weights``/``--weights-dir`` name, else the shipped model (said in one line)."""
    shipped = shipped_fallback(weights, weights_dir)
    if shipped is not None:
        print(f"note: no run in {weights_dir}/ yet, so the shipped faces model {_shown(shipped)} is used; "
              f"train your own with python train.py --dataset faces.", file=sys.stderr)
        return RunDir.params_file(shipped)
    return RunDir(weights_dir).find_params(weights)


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it lies below it."""
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_checkpoint(args) -> Checkpoint:
    """The checkpoint named by ``--weights``/``--weights-dir`` (or the shipped model); UserError when there is none."""
    path = checkpoint_path(args.weights, args.weights_dir)
    params, config = load_run(path)
    return Checkpoint(params, config, path)


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
            return (f"the {self.dataset} {self.split} split has only {counted(self.available, 'image')}, "
                    f"so {'it was' if self.available == 1 else 'all of them were'} used instead of {self.requested}")
        return None


def load_images(options: DataOptions, split: str, n: int, checkpoint: Checkpoint | None = None) -> Images:
    """The first ``n`` images of ``split`` (all of them when the split is smaller).

    Generated datasets make only ``n``; decoded ones are read from their cache with the recorded
    ``limit`` (so the same cache is reused) and cut to ``n``. With ``checkpoint``, the images must
    have the size its model takes.
    """
    if options.dataset in imagedata.GENERATED:
        options = replace(options, limit=n if options.limit is None else min(n, options.limit))
    images = imagedata.load(options, split, progress=options.dataset not in imagedata.GENERATED)
    if len(images) == 0:
        hint = " (a small folder may have none; try --split train or --split-file)" if options.dataset == "folder" else ""
        raise UserError(f"the {options.dataset} {split} split holds no images{hint}.")
    if checkpoint is not None:
        arch = checkpoint.config.model
        want = (arch.in_channels, arch.image_size, arch.image_size)
        if tuple(images.shape[1:]) != want:
            raise UserError(f"the images are {tuple(images.shape[1:])} but {checkpoint.path} was trained on {want}: "
                            f"pick the dataset it was trained on with --dataset.")
    return Images(images[:n], str(options.dataset), split, n, min(n, len(images)))


def load_for_script(args, n: int, *, note=True) -> tuple[Checkpoint, Images]:
    """The checkpoint of ``args`` and the first ``n`` images of ``args.split``, noting a short split."""
    checkpoint = load_checkpoint(args)
    data = load_images(data_options(args, checkpoint.config.data), args.split, n, checkpoint)
    if note and data.note:
        print(f"note: {data.note}.", file=sys.stderr)
    return checkpoint, data


# --------------------------------------------------------------------------- running

class Stopped(BaseException):
    """SIGTERM or SIGHUP arrived while a command was not training: unwinds like Ctrl-C, so that
    temporaries are removed and worker processes ended on the way out."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = int(signum)


def _stop(signum, _frame):
    raise Stopped(signum)


INTERRUPTED_LEAVES = "each file written before it is complete, and nothing half-written is left"


def out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is an allocation that failed: NumPy's MemoryError or XLA's RESOURCE_EXHAUSTED."""
    return isinstance(err, MemoryError) or "RESOURCE_EXHAUSTED" in str(err)


def unavailable_backend(err: BaseException) -> str | None:
    """The backend JAX failed to start, when ``err`` is that failure: its "Unable to initialize backend
    'tpu'" error, or the assertion its backend registry fails when $JAX_PLATFORMS names none it has."""
    found = re.match(r"Unable to initialize backend '([^']+)'", str(err).strip())
    if found:
        return repr(found.group(1))
    frames = traceback.extract_tb(err.__traceback__)
    if isinstance(err, AssertionError) and frames and frames[-1].filename.endswith("xla_bridge.py"):
        return f"$JAX_PLATFORMS={os.environ.get('JAX_PLATFORMS', '')!r} asks for"
    return None


def run_main(work, argv=None) -> int:
    """Call ``work(argv)`` and return its exit code (an int it returns, else 0); a ``UserError``
    becomes ``error: ...`` on stderr and ``EXIT_USER_ERROR``, Ctrl-C one line and ``EXIT_INTERRUPTED``."""
    heap.keep_freed_memory()  # before the first computation (system/heap.py)
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):  # outside training's own handling: unwind, clean up
        try:
            previous[signum] = signal.signal(signum, _stop)
        except ValueError:  # not the main thread: signals stay as they were
            pass
    try:
        code = work(argv)
    except UserError as err:
        message = str(err).strip() or type(err).__name__
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:  # the output was piped into a program that stopped reading (| head): end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except OSError as err:  # a storage error no step above turned into a sentence: still one sentence
        if err.errno not in STORAGE_ERRORS:
            raise
        where = f" {err.filename}" if err.filename else ""
        print(f"error: cannot write{where} ({err.strerror or err}); free some space or choose another folder.",
              file=sys.stderr)
        return EXIT_USER_ERROR
    except (MemoryError, RuntimeError, AssertionError) as err:  # an allocation failed, or JAX has no backend
        said = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        if out_of_memory(err):
            print(f"error: out of memory ({said}); ask for less: a smaller --batch-size, --limit, --num-images, "
                  f"--latent-dim or --channels.", file=sys.stderr)
        elif backend := unavailable_backend(err):
            print(f"error: JAX could not start the backend {backend}; unset $JAX_PLATFORMS or name one this "
                  f"machine has (cpu, or cuda with GPU JAX installed).", file=sys.stderr)
        else:
            raise
        return EXIT_USER_ERROR
    except KeyboardInterrupt:  # Ctrl-C outside training's own handling (loading data, compiling, figures)
        print(f"interrupted (Ctrl-C); {INTERRUPTED_LEAVES}.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Stopped as stop:
        print(f"stopped by {signal.Signals(stop.signum).name}; {INTERRUPTED_LEAVES}.", file=sys.stderr)
        return 128 + stop.signum
    finally:
        if argv is None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # a command whose work is over: Ctrl-C just ends it
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code if isinstance(code, int) else 0
