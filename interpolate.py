"""Interpolation in the latent space of a trained β-VAE between pairs of held-out images.

For each pair (a, b) of test images, one row of ``<out-dir>/latent_interpolation.png``:
the original a, its reconstruction (decoded from μ_a), ``--steps`` decodes of latent
codes between μ_a and μ_b, the reconstruction of b and the original b.

``--mode linear`` (default) moves along the straight line (1 - t) μ_a + t μ_b;
``--mode slerp`` along the great circle (spherical linear interpolation, Shoemake 1985),
which keeps the norm of the code closer to that of typical samples from N(0, I). For
nearly parallel (or opposite, or zero) vectors the great circle is undefined or
ill-conditioned and slerp falls back to the straight line.

Examples::

    python interpolate.py
    python interpolate.py --pairs 0:1 2:3 4:5 --steps 10 --mode slerp
    python interpolate.py --index-a 12 --index-b 40 --weights weights/epoch_5
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import figures
import script_utils as su

INTERPOLATION_FILE = "latent_interpolation.png"
MODES = ("linear", "slerp")
DEFAULT_PAIRS = ((0, 1), (2, 3), (4, 5))
PARALLEL_EPS = 1e-6  # below this sin(angle) slerp uses the straight line


def parse_pair(text: str) -> tuple[int, int]:
    """'3:7' -> (3, 7)."""
    parts = text.split(":")
    try:
        a, b = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a pair of image indices like 0:1, not {text!r}") from None
    if a < 0 or b < 0:
        raise argparse.ArgumentTypeError(f"image indices must be >= 0, not {text!r}")
    return a, b


def build_parser():
    parser = su.make_parser(__doc__)
    su.add_checkpoint_arguments(parser)
    group = parser.add_argument_group("interpolation")
    group.add_argument("--pairs", type=parse_pair, nargs="+", default=None, metavar="A:B",
                       help="pairs of test-image indices, one row each (default: 0:1 2:3 4:5)")
    group.add_argument("--index-a", type=su.non_negative_int, default=None, metavar="N",
                       help="first test image of a single pair (instead of --pairs; default 0 when only --index-b is given)")
    group.add_argument("--index-b", type=su.non_negative_int, default=None, metavar="N",
                       help="second test image of a single pair (instead of --pairs; default 1 when only --index-a is given)")
    group.add_argument("--steps", type=su.positive_int, default=8, metavar="N",
                       help="latent codes decoded strictly between the two ends (default: 8)")
    group.add_argument("--mode", choices=MODES, default="linear",
                       help="straight line ('linear') or great circle ('slerp') between the codes (default: linear)")
    return parser


# --------------------------------------------------------------------------- #
# Interpolation
# --------------------------------------------------------------------------- #


def lerp(a, b, t) -> np.ndarray:
    """(len(t), D): (1 - t) a + t b; exactly a at t = 0 and b at t = 1."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    t = np.asarray(t, np.float64)[:, None]
    out = (1.0 - t) * a + t * b
    out[t[:, 0] == 0.0] = a
    out[t[:, 0] == 1.0] = b
    return out


def slerp(a, b, t, eps: float = PARALLEL_EPS) -> np.ndarray:
    """(len(t), D): spherical interpolation from a (t = 0) to b (t = 1).

    sin((1 - t) Ω) / sin Ω · a + sin(t Ω) / sin Ω · b, with Ω the angle between a and b.
    When sin Ω < ``eps`` (nearly parallel or opposite vectors, or a zero vector) the
    straight line is used instead, so the result is always finite. Endpoints are exact.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    t = np.asarray(t, np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0.0 or nb == 0.0 or not (np.isfinite(na) and np.isfinite(nb)):
        return lerp(a, b, t)
    cos = float(np.clip(np.dot(a / na, b / nb), -1.0, 1.0))
    omega = float(np.arccos(cos))
    sin = float(np.sin(omega))
    if sin < eps:
        return lerp(a, b, t)
    wa = np.sin((1.0 - t) * omega) / sin
    wb = np.sin(t * omega) / sin
    out = wa[:, None] * a + wb[:, None] * b
    out[t == 0.0] = a
    out[t == 1.0] = b
    return out


def interpolation_times(steps: int) -> np.ndarray:
    """0, the ``steps`` interior times k / (steps + 1), and 1."""
    return np.linspace(0.0, 1.0, steps + 2)


def interpolate_latents(a, b, steps: int, mode: str = "linear") -> np.ndarray:
    """(steps + 2, D) codes from a to b, both ends included."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    return (slerp if mode == "slerp" else lerp)(a, b, interpolation_times(steps))


def interpolation_figure(params, images, pairs, path, *, steps=8, mode="linear") -> Path:
    """One row per pair: original a, decodes from μ_a through μ_b, original b."""
    needed = 1 + max(max(p) for p in pairs)
    if needed > len(images):
        raise su.ScriptError(f"image index {needed - 1} is past the {len(images)} test images available; "
                             f"pick indices below {len(images)}.")
    used = sorted({i for p in pairs for i in p})
    mu, _ = su.encode_all(params, images[used])
    code = {i: mu[k] for k, i in enumerate(used)}
    latents = np.stack([interpolate_latents(code[a], code[b], steps, mode) for a, b in pairs])
    decoded = su.decode_all(params, latents.reshape(-1, latents.shape[-1]))
    decoded = decoded.reshape(latents.shape[:2] + decoded.shape[1:])
    grid = [[su.as_float(images[a])] + list(row) + [su.as_float(images[b])]
            for (a, b), row in zip(pairs, decoded)]
    times = interpolation_times(steps)
    col_labels = ["original a", "recon. a"] + [f"t = {t:.2f}" for t in times[1:-1]] + ["recon. b", "original b"]
    row_labels = [f"#{a} → #{b}" for a, b in pairs]
    name = "spherical (slerp)" if mode == "slerp" else "linear"
    title = f"Latent interpolation between test images ({name}, decoded from μ)"
    return figures.image_grid(grid, path, row_labels=row_labels, col_labels=col_labels, title=title,
                              col_breaks=(0, steps + 2))


def choose_pairs(args) -> list[tuple[int, int]]:
    if args.index_a is not None or args.index_b is not None:
        if args.pairs is not None:
            raise su.ScriptError("give either --pairs or --index-a/--index-b, not both.")
        return [(0 if args.index_a is None else args.index_a, 1 if args.index_b is None else args.index_b)]
    return list(args.pairs) if args.pairs is not None else list(DEFAULT_PAIRS)


def _run(argv):
    args = build_parser().parse_args(argv)
    pairs = choose_pairs(args)
    checkpoint = su.load(args)
    options = su.data_options(args, checkpoint.config)
    needed = 1 + max(max(p) for p in pairs)
    data = su.load_images(options, args.split, needed)
    su.check_image_size(checkpoint, data.images)
    path = interpolation_figure(checkpoint.params, data.images, pairs, Path(args.out_dir) / INTERPOLATION_FILE,
                                steps=args.steps, mode=args.mode)
    print(f"checkpoint {checkpoint.describe()}, {data.dataset} {data.split} split, {args.mode} interpolation")
    print(f"wrote {path}")
    return path


def main(argv=None) -> int:
    return su.run_main(_run, argv)


if __name__ == "__main__":
    sys.exit(main())
