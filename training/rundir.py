"""A run's weights folder as one run owns it: a lock, no silent reuse, no half-finished saves.

``claim`` is called before a run starts: it takes ``.lock`` (so two runs never write one
folder), finishes or removes what a killed save left behind, refuses a folder of another run
unless told to resume or overwrite, and checks that the folder can be written.
"""
from __future__ import annotations

import errno
import fcntl
import os
import shutil
import socket
from pathlib import Path

from model.checkpoint import EPOCH_PREFIX, HISTORY_FILE, PARAMS_FILE, SAMPLES_DIR
from system.errors import UserError

LOCK_FILE = ".lock"
MIN_FREE_BYTES = 64 * 2**20  # a tiny checkpoint; below this a save is bound to fail
CHECKPOINT_FILES = (PARAMS_FILE, "optimizer.npz", "trainer.json")


class Lock:
    """An exclusive ``flock`` on ``folder/.lock``, holding the owner's pid and host.

    The kernel drops the lock when its process dies, so the lock of a killed run is free again.
    """

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK_FILE
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


def run_files(folder: Path) -> list[Path]:
    """The files and folders of a run in ``folder``: checkpoints, interrupted/, history, samples/."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.name in (HISTORY_FILE, "interrupted", SAMPLES_DIR) or p.name.startswith(EPOCH_PREFIX)
                  or (p.name.startswith(".") and p.name.endswith((".tmp", ".old"))))


def recover(folder: Path) -> None:
    """Finish what a save killed between its steps left: a missing checkpoint comes back from its
    complete new (``.X.tmp``) or old (``.X.old``) copy; other temporaries are removed."""
    leftovers = [p for p in run_files(folder) if p.name.startswith(".") and p.name.endswith((".tmp", ".old"))]
    for path in sorted(leftovers, key=lambda p: p.name.endswith(".old")):  # the newer .tmp first
        name = path.name
        target = folder / name[1:-4]
        if path.is_dir() and not target.exists() and complete(path) and _is_checkpoint_name(target.name):
            os.replace(path, target)
    for path in run_files(folder):  # a second pass: .old when .tmp was taken, and the rest
        if path.name.startswith(".") and path.name.endswith((".tmp", ".old")):
            _remove(path)


def _is_checkpoint_name(name: str) -> bool:
    return name == "interrupted" or (name.startswith(EPOCH_PREFIX) and name[len(EPOCH_PREFIX):].isdigit())


def complete(folder: Path) -> bool:
    return all((folder / f).is_file() for f in CHECKPOINT_FILES)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except OSError:
            pass


def claim(folder: Path, *, resume: bool, overwrite: bool) -> Lock:
    """Lock ``folder`` for this run and make it ready (see the module docstring); returns the lock."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = Lock(folder).acquire()
    except OSError as e:
        raise UserError(f"cannot write to the weights folder {folder} ({e.strerror or e}); "
                        f"choose another --weights-dir.") from None
    try:
        recover(folder)
        used = run_files(folder)
        if used and not resume:
            if not overwrite:
                raise UserError(f"{folder} already holds a run ({used[0].name}, ...); continue it with --resume, "
                                f"replace it with --overwrite, or use another --weights-dir.")
            for path in used:
                _remove(path)
        check_space(folder)
    except BaseException:
        lock.release()
        raise
    return lock


def check_space(folder: Path) -> None:
    """UserError when ``folder`` has less than ``MIN_FREE_BYTES`` free."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < MIN_FREE_BYTES:
        raise UserError(f"only {free // 2**20} MiB are free in {folder}, too little for a checkpoint; "
                        f"free some space or choose another --weights-dir.")
