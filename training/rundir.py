"""A training run's folder, and every name in it: one type owns the layout.

    weights/                  the run folder (--weights-dir)
      .lock                   held by the run training in it (``Lock``)
      epoch_N/                a checkpoint after epoch N: model.safetensors, optimizer.safetensors, trainer.json
                              (params.npz and optimizer.npz in checkpoints of earlier versions)
      interrupted/            the checkpoint saved when a run was stopped inside an epoch
      history.json            every logged step and epoch (plots.py)
      samples/                grids of reconstructions and prior samples written while training
      superseded/             checkpoints set aside when --resume-from branched off an older one
      .epoch_N.tmp, .epoch_N.old   a save in progress (``recover`` finishes or removes them)

Only these names, written by a run, are the run's: ``--overwrite`` removes nothing else, and no
symlink is followed or taken for a checkpoint.

``RunDir.claim`` is called before a run starts: it takes the lock (so two runs never write one
folder), finishes or removes what a killed save left behind, refuses a folder of another run
unless told to resume or overwrite, and checks that the folder can be written. Every command
finds checkpoints through ``RunDir``.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import socket
import time
from pathlib import Path

from system.errors import UserError
from system.files import atomic_write

MIN_FREE_BYTES = 64 * 2**20  # a tiny checkpoint; below this a save is bound to fail


class RunDir:
    PARAMS_FILE = "model.safetensors"  # the parameters and the run's config (model/param_file.py)
    OPTIMIZER_FILE = "optimizer.safetensors"
    PROGRESS_FILE = "trainer.json"     # epoch, batch, step and wall time of the checkpoint
    CHECKPOINT_FILES = (PARAMS_FILE, OPTIMIZER_FILE, PROGRESS_FILE)  # what a complete checkpoint holds
    LEGACY = {PARAMS_FILE: "params.npz", OPTIMIZER_FILE: "optimizer.npz"}  # what checkpoints held before
    HISTORY_FILE = "history.json"
    SAMPLES_DIR = "samples"
    INTERRUPTED = "interrupted"
    SUPERSEDED = "superseded"
    LOCK_FILE = ".lock"
    EPOCH_PREFIX = "epoch_"
    SAMPLE_NAME = re.compile(r"(epoch|step)_\d+\.png")  # training/monitor.py's grids
    TEMPORARY_NAME = re.compile(r"\.(epoch_\d+|interrupted)\.(tmp|old)|\.history\.json\.\d+\.tmp")

    def __init__(self, root):
        self.root = Path(root)

    def __repr__(self):
        return f"RunDir({str(self.root)!r})"

    # ---------------------------------------------------------------- names

    @property
    def history(self) -> Path:
        return self.root / self.HISTORY_FILE

    @property
    def samples(self) -> Path:
        return self.root / self.SAMPLES_DIR

    @property
    def interrupted(self) -> Path:
        return self.root / self.INTERRUPTED

    def epoch_folder(self, epoch: int) -> Path:
        return self.root / f"{self.EPOCH_PREFIX}{epoch}"

    @classmethod
    def epoch_number(cls, path) -> int | None:
        """N of an ``epoch_N`` folder (or of a file in one), else None."""
        for name in (Path(path).name, Path(path).parent.name):
            suffix = name[len(cls.EPOCH_PREFIX):]
            if name.startswith(cls.EPOCH_PREFIX) and suffix.isdigit():
                return int(suffix)
        return None

    @classmethod
    def is_checkpoint_name(cls, name: str) -> bool:
        return name == cls.INTERRUPTED or (name.startswith(cls.EPOCH_PREFIX) and name[len(cls.EPOCH_PREFIX):].isdigit())

    @classmethod
    def checkpoint_file(cls, folder, name) -> Path:
        """``folder/name``, or its legacy counterpart when only that exists."""
        path, legacy = Path(folder) / name, Path(folder) / cls.LEGACY.get(name, name)
        return legacy if not path.exists() and legacy.exists() else path

    @classmethod
    def params_file(cls, folder) -> Path:
        return cls.checkpoint_file(folder, cls.PARAMS_FILE)

    @classmethod
    def optimizer_file(cls, folder) -> Path:
        return cls.checkpoint_file(folder, cls.OPTIMIZER_FILE)

    @classmethod
    def is_complete(cls, folder) -> bool:
        """Whether ``folder`` holds every file of a checkpoint."""
        return all(cls.checkpoint_file(folder, f).is_file() for f in cls.CHECKPOINT_FILES)

    # ---------------------------------------------------------------- finding checkpoints

    def epochs(self) -> list[tuple[int, Path]]:
        """[(epoch, folder)] of the ``epoch_N/`` checkpoints holding a parameter file, oldest first.

        Ordered by the steps each recorded, so a renamed folder cannot pass for a newer one; the
        epoch is the recorded one too (``epoch_label``). Symlinks are never checkpoints of this run.
        """
        found = []
        if self.root.is_dir():
            for path in self.root.iterdir():
                if self.epoch_number(path) is not None and path.name.startswith(self.EPOCH_PREFIX) \
                        and not path.is_symlink() and self.params_file(path).is_file():
                    found.append((self.steps_of(path), self.epoch_label(path), path))
        return [(epoch, path) for _, epoch, path in sorted(found)]

    @classmethod
    def epoch_label(cls, path) -> int | None:
        """The epoch of the checkpoint folder ``path`` (or of a file in it): the one its progress file
        records, else the N of its name; None for a folder that is no epoch_N."""
        folder = Path(path) if Path(path).is_dir() else Path(path).parent
        number = cls.epoch_number(folder)
        if number is None or not folder.name.startswith(cls.EPOCH_PREFIX):
            return None
        try:
            recorded = json.loads((folder / cls.PROGRESS_FILE).read_text())["epoch"]
        except (OSError, KeyError, ValueError, TypeError):
            return number
        return recorded if isinstance(recorded, int) else number

    def latest_epoch(self) -> Path | None:
        """The newest ``epoch_N/`` holding a parameter file, or None."""
        found = self.epochs()
        return found[-1][1] if found else None

    def resume_point(self) -> Path:
        """The checkpoint folder with the most steps: the newest epoch_N or an interrupted one."""
        candidates = [path for _, path in self.epochs()]
        if self.params_file(self.interrupted).is_file() and not self.interrupted.is_symlink():
            candidates.append(self.interrupted)
        if not candidates:
            raise UserError(f"--resume found no checkpoint in {self.root}/; run without --resume to start a new run.")
        return max(candidates, key=self.steps_of)

    def latest_saved(self) -> Path | None:
        """``resume_point()``, or None when the run has saved nothing."""
        try:
            return self.resume_point()
        except UserError:
            return None

    @classmethod
    def steps_of(cls, folder) -> int:
        """Steps trained by the checkpoint in ``folder`` (−1 when its progress file is unreadable)."""
        try:
            return int(json.loads((Path(folder) / cls.PROGRESS_FILE).read_text())["step"])
        except (OSError, KeyError, ValueError, TypeError):
            return -1

    def find_params(self, weights=None) -> Path:
        """The parameter file to load: ``weights`` (a parameter file, a checkpoint folder or a run
        folder, which gives its newest epoch) or, when None, the newest epoch of this run.

        Raises UserError with one sentence when there is none.
        """
        if weights is None:
            latest = self.latest_epoch()
            if latest is None:
                raise UserError(f"No checkpoint found in {self.root}/: train one first with "
                                f"`python train.py --dataset faces`, or pass --weights PATH.")
            return self.params_file(latest)
        path = Path(weights)
        if not path.is_dir() or self.params_file(path).exists():
            return self.params_file(path) if path.is_dir() else path
        latest = RunDir(path).latest_epoch()  # a run folder: its newest checkpoint
        return self.params_file(path if latest is None else latest)

    def owns(self, checkpoint) -> bool:
        """Whether the checkpoint folder ``checkpoint`` is one of this run's."""
        return Path(checkpoint).resolve().parent == self.root.resolve()

    def set_aside_newer(self, checkpoint) -> list[Path]:
        """Move this run's checkpoints with more steps than ``checkpoint`` into ``superseded/<time>/``
        (with a copy of the history), so that a run resumed from ``checkpoint`` is the folder's newest
        and nothing of the old branch is lost; returns the moved folders' new places."""
        steps, mine = self.steps_of(checkpoint), Path(checkpoint).resolve()
        candidates = [path for _, path in self.epochs()]
        if self.interrupted.is_dir() and not self.interrupted.is_symlink():
            candidates.append(self.interrupted)
        newer = [p for p in candidates if p.resolve() != mine and self.steps_of(p) > steps]
        if not newer:
            return []
        dest = self.root / self.SUPERSEDED / time.strftime("%Y%m%d-%H%M%S")
        while dest.exists():
            dest = dest.with_name(dest.name + "+")
        dest.mkdir(parents=True)
        if self.history.is_file():
            shutil.copy2(self.history, dest / self.HISTORY_FILE)
        for path in newer:
            os.replace(path, dest / path.name)
        return [dest / p.name for p in newer]

    def prune(self, keep) -> None:
        """Delete all but the newest ``keep`` epoch checkpoints (nothing when ``keep`` is None)."""
        if keep:
            for _, path in self.epochs()[:-keep]:
                shutil.rmtree(path, ignore_errors=True)

    # ---------------------------------------------------------------- the history

    def read_history(self, done: dict) -> dict:
        """The run's history up to the checkpoint ``done`` ({'epoch', 'step'}), or a fresh one."""
        path = self.history
        try:
            history = json.loads(path.read_text()) if path.is_file() else {"epochs": [], "steps": []}
            history["steps"] = [r for r in history["steps"] if r["step"] <= done["step"]]
            history["epochs"] = [r for r in history["epochs"] if r["epoch"] <= done["epoch"]]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(f"the history {path} is corrupt ({type(err).__name__}: {err}); move it away to resume "
                            f"without the earlier curves.") from None
        return history

    def write_history(self, history) -> None:
        """``history.json`` written atomically; a storage error is one sentence."""
        text = json.dumps(history)
        try:
            atomic_write(self.history, lambda f: f.write(text.encode()))
        except OSError as e:
            raise UserError(f"cannot write {self.history} ({e.strerror or e}); free some space "
                            f"or choose another --weights-dir, then continue with --resume.") from None

    # ---------------------------------------------------------------- owning the folder

    def run_files(self) -> list[Path]:
        """What a run wrote here: its checkpoints, interrupted/, superseded/, history, sample grids and
        save temporaries. Nothing else, and no symlink (nor anything behind one)."""
        if not self.root.is_dir():
            return []
        found = []
        for p in self.root.iterdir():
            if p.is_symlink():
                continue
            name = p.name
            if p.is_dir() and (self.is_checkpoint_name(name) or name == self.SUPERSEDED
                               or self.TEMPORARY_NAME.fullmatch(name)):
                found.append(p)
            elif p.is_file() and (name == self.HISTORY_FILE or self.TEMPORARY_NAME.fullmatch(name)):
                found.append(p)
            elif name == self.SAMPLES_DIR and p.is_dir():
                found += [g for g in p.iterdir() if g.is_file() and not g.is_symlink() and self.SAMPLE_NAME.fullmatch(g.name)]
        return sorted(found)

    def recover(self) -> None:
        """Finish what a save killed between its steps left: a missing checkpoint comes back from its
        complete new (``.X.tmp``) or old (``.X.old``) copy; other temporaries are removed."""
        leftovers = [p for p in self.run_files() if p.is_dir() and self.TEMPORARY_NAME.fullmatch(p.name)]
        for path in sorted(leftovers, key=lambda p: p.name.endswith(".old")):  # the newer .tmp first
            target = self.root / path.name[1:-4]
            if path.is_dir() and not target.exists() and self.is_complete(path) and self.is_checkpoint_name(target.name):
                os.replace(path, target)
        for path in self.run_files():  # a second pass: .old when .tmp was taken, and the rest
            if self.TEMPORARY_NAME.fullmatch(path.name):
                _remove(path)

    def claim(self, *, resume: bool, overwrite: bool) -> "Lock":
        """Lock the folder for this run and make it ready (see the module docstring); returns the lock."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            lock = Lock(self.root / self.LOCK_FILE).acquire()
        except OSError as e:
            raise UserError(f"cannot write to the weights folder {self.root} ({e.strerror or e}); "
                            f"choose another --weights-dir.") from None
        try:
            self.recover()
            used = self.run_files()
            if used and not resume:
                if not overwrite:
                    raise UserError(f"{self.root} already holds a run ({used[0].relative_to(self.root)}, ...); "
                                    f"continue it with --resume, replace it with --overwrite, or use another "
                                    f"--weights-dir.")
                for path in used:
                    _remove(path)
                try:
                    self.samples.rmdir()  # only when the run's grids were all it held
                except OSError:
                    pass
            self.check_space()
        except BaseException:
            lock.release()
            raise
        return lock

    def check_space(self) -> None:
        """UserError when the folder has less than ``MIN_FREE_BYTES`` free."""
        try:
            free = shutil.disk_usage(self.root).free
        except OSError:
            return
        if free < MIN_FREE_BYTES:
            raise UserError(f"only {free // 2**20} MiB are free in {self.root}, too little for a checkpoint; "
                            f"free some space or choose another --weights-dir.")


class Lock:
    """An exclusive ``flock`` on a lock file, holding the owner's pid and host.

    The kernel drops the lock when its process dies, so the lock of a killed run is free again.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.fd = None

    def acquire(self) -> "Lock":
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise UserError(f"{self.path.parent} is in use by another training run ({self._holder()}); "
                                f"wait for it to end or use another --weights-dir.") from None
            if _same_file(fd, self.path):  # not a lock file its last holder has just removed
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self.fd = fd
        return self

    def _holder(self) -> str:
        try:
            return self.path.read_text().strip() or "holder unknown"
        except OSError:
            return "holder unknown"

    def release(self) -> None:
        if self.fd is not None:
            try:
                self.path.unlink()
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None


def _same_file(fd, path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except OSError:
            pass
