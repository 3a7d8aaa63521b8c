"""argparse ``type``s for numbers: a value out of range is one line naming what was expected.

Every command's flags use them (``cli.py``, the dataset previews, the tools), so a bad number is
refused while the flags are read, before any work, in the same words everywhere.
"""
import argparse
import math


def int_at_least(minimum: int, maximum: int | None = None):
    """An argparse ``type`` for whole numbers >= ``minimum`` (and <= ``maximum``), a one-line error otherwise."""
    wanted = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected a whole number {wanted}, not {text!r}")
        return value
    parse.__name__ = f"int>={minimum}"
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)
seed_int = int_at_least(0, 2 ** 32 - 1)  # what jax.random.PRNGKey and NumPy's generators both take


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
