"""Build (or check) the uint8 data caches and report them.

Every dataset is delivered as uint8 arrays (N, 3, 64, 64), CHW, RGB; decoded datasets (CelebA)
are decoded once, on all cores, into ``--cache-dir`` (``imagedata/``). The embedded datasets
are rendered, not cached.

Examples::

    python load_data.py --dataset faces
    python load_data.py --dataset celeba --data-dir ~/datasets/celeba
    python load_data.py --dataset celeba --crop none --limit 5000
    BVAEX_DATA_DIR=/mnt/celeba python load_data.py --dataset celeba --cache-dir /scratch/cache
"""
import sys
import time

import cli
import imagedata
from system.arguments import int_at_least, positive_int


MAX_IMAGE_SIZE = 1024  # beyond it one decoding chunk of 256 images alone is over 750 MiB


def build_parser():
    parser = cli.make_parser(__doc__)
    cli.add_data_arguments(parser)
    parser.add_argument("--splits", nargs="+", choices=imagedata.SPLITS, default=list(imagedata.SPLITS),
                        help="which splits to load (default: train val test)")
    parser.add_argument("--image-size", type=int_at_least(8, MAX_IMAGE_SIZE), default=imagedata.IMAGE_SIZE,
                        help=f"side of the square output images in pixels, 8 to {MAX_IMAGE_SIZE} "
                             f"(default: {imagedata.IMAGE_SIZE})")
    parser.add_argument("--num-workers", type=positive_int, default=None,
                        help="processes decoding JPEGs (default: all cores)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _run(argv):
    args = build_parser().parse_args(argv)
    options = cli.data_options(args)
    total = time.perf_counter()
    for split in args.splits:
        start = time.perf_counter()
        images, info = imagedata.load_with_info(options, split, image_size=args.image_size,
                                                num_workers=args.num_workers, progress=not args.no_progress)
        seconds = time.perf_counter() - start
        if info["cache"] is None:
            where, how = "(generated, not cached)", "generated"
        else:
            where, how = info["cache"], "built" if info["built"] else "loaded"
        skipped = f", {info['skipped']} skipped" if info["skipped"] else ""
        print(f"{args.dataset} {split:5s} {len(images):>7,d} images {tuple(images.shape)} {images.dtype}  "
              f"{where}  ({how} in {seconds:.1f} s{skipped})")
    print(f"total {time.perf_counter() - total:.1f} s")


def main(argv=None) -> int:
    return cli.run_main(_run, argv)


if __name__ == "__main__":
    sys.exit(main())
