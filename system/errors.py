"""The one exception type for a problem the user can fix, and its exit code."""

EXIT_USER_ERROR = 2  # as argparse exits for a malformed command line


class UserError(Exception):
    """A problem with the user's input (data, checkpoint, flags, disk), said in one sentence with what to do."""
