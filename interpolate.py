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
    python interpolate.py --pair photos/a.jpg photos/b.jpg    # two image files of your own
"""
import argparse
import sys
from pathlib import Path

import cli
from analysis import figures, own_images
from analysis.latents import MODES
from system.arguments import non_negative_int, positive_int
from system.errors import UserError, counted

INTERPOLATION_FILE = "latent_interpolation.png"
DEFAULT_PAIRS = ((0, 1), (2, 3), (4, 5))


def parse_pair(text: str) -> tuple[int, int]:
    """'3:7' -> (3, 7)."""
    try:
        a, b = (int(p) for p in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a pair of image indices like 0:1, not {text!r}") from None
    if a < 0 or b < 0:
        raise argparse.ArgumentTypeError(f"image indices must be >= 0, not {text!r}")
    return a, b


def build_parser():
    parser = cli.make_parser(__doc__)
    cli.add_checkpoint_arguments(parser)
    group = parser.add_argument_group("interpolation")
    group.add_argument("--pairs", type=parse_pair, nargs="+", default=None, metavar="A:B",
                       help="pairs of test-image indices, one row each (default: 0:1 2:3 4:5)")
    group.add_argument("--index-a", type=non_negative_int, default=None, metavar="N",
                       help="first test image of a single pair (instead of --pairs; default 0 when only --index-b is given)")
    group.add_argument("--index-b", type=non_negative_int, default=None, metavar="N",
                       help="second test image of a single pair (instead of --pairs; default 1 when only --index-a is given)")
    group.add_argument("--pair", nargs=2, metavar="FILE", default=None,
                       help="two image files to interpolate between, preprocessed as the checkpoint's dataset "
                            "(instead of --pairs)")
    group.add_argument("--steps", type=positive_int, default=8, metavar="N",
                       help="latent codes decoded strictly between the two ends (default: 8)")
    group.add_argument("--mode", choices=MODES, default="linear",
                       help="straight line ('linear') or great circle ('slerp') between the codes (default: linear)")
    return parser


def choose_pairs(args) -> list[tuple[int, int]]:
    if args.index_a is not None or args.index_b is not None:
        if args.pairs is not None:
            raise UserError("give either --pairs or --index-a/--index-b, not both.")
        return [(0 if args.index_a is None else args.index_a, 1 if args.index_b is None else args.index_b)]
    return list(args.pairs) if args.pairs is not None else list(DEFAULT_PAIRS)


def default_pairs_within(data) -> list[tuple[int, int]]:
    """The default pairs a small split has images for (a note names the ones left out)."""
    n = len(data.images)
    pairs = [p for p in DEFAULT_PAIRS if max(p) < n]
    if not pairs:
        raise UserError(f"the {data.dataset} {data.split} split has {counted(n, 'image')}, and an "
                        f"interpolation needs two; pick another --split or give two files with --pair FILE FILE.")
    if len(pairs) < len(DEFAULT_PAIRS):
        print(f"note: the {data.dataset} {data.split} split has {counted(n, 'image')}, so only "
              f"{' '.join(f'{a}:{b}' for a, b in pairs)} of the default pairs are drawn.", file=sys.stderr)
    return pairs


def _run(argv):
    args = build_parser().parse_args(argv)
    cli.out_dir(args.out_dir)
    if args.pair is not None:
        if args.pairs is not None or args.index_a is not None or args.index_b is not None:
            raise UserError("give either --pair FILE FILE or test-image indices, not both.")
        checkpoint = cli.load_checkpoint(args)
        images = own_images.load_files(args.pair, checkpoint.params, checkpoint.config.data, getattr(args, "crop", None))
        data = cli.Images(images, "files", " and ".join(args.pair), 2, 2)
        pairs = [(0, 1)]
    else:
        pairs = choose_pairs(args)
        checkpoint, data = cli.load_for_script(args, 1 + max(max(p) for p in pairs), note=False)
        if args.pairs is None and args.index_a is None and args.index_b is None:  # the defaults: as many as fit
            pairs = default_pairs_within(data)
    names = [Path(f).name for f in args.pair] if args.pair is not None else None
    path = figures.interpolation_figure(checkpoint.params, data.images, pairs, Path(args.out_dir) / INTERPOLATION_FILE,
                                        steps=args.steps, mode=args.mode, names=names)
    what = f"{data.split}" if args.pair is not None else f"{data.dataset} {data.split} split"
    print(f"checkpoint {checkpoint.describe()}, {what}, {args.mode} interpolation")
    print(f"wrote {path}")
    return path


def main(argv=None) -> int:
    return cli.run_main(_run, argv)


if __name__ == "__main__":
    sys.exit(main())
