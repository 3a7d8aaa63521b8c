"""The one exception type for a problem the user can fix, and the exit codes of the commands."""

EXIT_USER_ERROR = 2  # as argparse exits for a malformed command line
EXIT_INTERRUPTED = 130  # as a shell reports a process ended by Ctrl-C (128 + SIGINT)


class UserError(Exception):
    """A problem with the user's input (data, checkpoint, flags, disk), said in one sentence with what to do."""


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun`` for a message, plural unless n is 1: "1 image", "10,240 images"."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
