"""Ctrl-C and stop requests recorded, not raised: the run saves and ends with one line.

SIGINT (Ctrl-C), SIGTERM (as Kaggle, Colab, SLURM and docker send), SIGHUP (a closed terminal or
a dropped ssh session), SIGUSR1 and SIGUSR2 (what SLURM's ``--signal`` and other schedulers send
before a time limit). Inside ``recorded()`` a signal only appends its number to a list the
training loop polls, so a step or a checkpoint save is never cut in half and a second Ctrl-C
cannot raise a traceback; the decoding pool holds them the same way while it spawns its workers.
"""
from __future__ import annotations

import contextlib
import signal

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


@contextlib.contextmanager
def recorded():
    """Yield the list of signal numbers received while inside; restore the old handlers after."""
    received: list[int] = []
    previous = {}
    for sig in HANDLED:
        try:
            previous[sig] = signal.signal(sig, lambda signum, _frame: received.append(signum))
        except ValueError:  # not the main thread: signals stay as they were
            pass
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def exit_code(signum: int) -> int:
    """128 + the signal's number, as a shell reports a process the signal ended (130, 143)."""
    return 128 + int(signum)
