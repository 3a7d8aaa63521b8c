"""Figures of a trained β-VAE: reconstructions, samples from the prior and latent traversals.

Writes into ``--out-dir`` (default ``results/``):

reconstruction_grid.png
    Top row: held-out test images; bottom row: their reconstructions, decoded from the
    posterior mean μ (no sampling).
generated_faces.png
    Decodes of z ~ N(0, I) drawn with a fixed seed (``--num-samples`` of them, 64 -> 8 x 8).
latent_traversals.png
    The figure of the β-VAE paper (Higgins et al. 2017): the latent dimensions ranked by
    their KL divergence from the prior averaged over test images, highest first; each of
    the top ``--traverse-dims`` is set to ``--traverse-steps`` values from -3 to +3 while
    the other coordinates stay at a test image's μ. One row per dimension, labelled with
    its index and KL; the first column shows the test image itself.

The newest ``weights/epoch_N/`` is used unless ``--weights`` names another checkpoint; the
data flags default to the options the checkpoint was trained with.

Examples::

    python evaluate.py
    python evaluate.py --weights weights/epoch_10 --out-dir results/epoch_10
    python evaluate.py --dataset celeba --num-images 12 --num-samples 100 --seed 3
    python evaluate.py --traverse-dims 10 --traverse-steps 11 --traverse-index 5

On an embedded dataset with known factors, each traversal row also names the factor its
dimension carries the most mutual information about (e.g. "z17 · Smiling").
"""
import sys
from pathlib import Path

import cli
import imagedata
from analysis import figures
from analysis.disentanglement import factor_labels
from analysis.latents import rank_dimensions
from analysis.evaluation import encode_images
from analysis.image_metrics import mean_kl_per_dimension
from system.arguments import int_at_least, non_negative_int, positive_int, seed_int
from system.errors import UserError

RECONSTRUCTION_FILE = "reconstruction_grid.png"
SAMPLES_FILE = "generated_faces.png"
TRAVERSAL_FILE = "latent_traversals.png"


def build_parser():
    parser = cli.make_parser(__doc__)
    cli.add_checkpoint_arguments(parser)
    group = parser.add_argument_group("figures")
    group.add_argument("--num-images", type=positive_int, default=8, metavar="N",
                       help="test images in the reconstruction grid (default: 8)")
    group.add_argument("--num-samples", type=positive_int, default=64, metavar="N",
                       help="prior samples in the generated grid, laid out as square as possible (default: 64)")
    group.add_argument("--seed", type=seed_int, default=0, metavar="N", help="seed of the prior samples (default: 0)")
    group.add_argument("--traverse-dims", type=positive_int, default=8, metavar="N",
                       help="latent dimensions shown in the traversal, those of highest KL (default: 8)")
    group.add_argument("--traverse-steps", type=int_at_least(2), default=9, metavar="N",
                       help="values from -3 to +3 given to each traversed dimension (default: 9)")
    group.add_argument("--traverse-index", type=non_negative_int, default=0, metavar="N",
                       help="test image whose μ the traversal starts from (default: 0)")
    group.add_argument("--traverse-relative", action="store_true",
                       help="add the values to the image's μ of that dimension instead of replacing it")
    group.add_argument("--rank-images", type=positive_int, default=1000, metavar="N",
                       help="test images over which the KL of each dimension is averaged to rank them (default: 1000)")
    return parser


def evaluate(params, images, out_dir, *, num_images=8, num_samples=64, seed=0, traverse_dims=8,
             traverse_steps=9, traverse_index=0, traverse_relative=False, factors=None) -> dict:
    """Write the three figures; ``images`` are held-out uint8 images (N, 3, H, W).

    The first ``num_images`` go in the reconstruction grid; all of them rank the latent
    dimensions by KL. ``factors``: (names, (N, K) values) of the images, to label the traversal
    rows with the factor each dimension carries. Returns {'reconstruction', 'samples', 'traversals': paths,
    'kl_per_dim': array, 'traversed_dims': array}.
    """
    out_dir = Path(out_dir)
    if traverse_index >= len(images):
        raise UserError(f"--traverse-index {traverse_index} is past the {len(images)} test images loaded; "
                        f"pick one below {len(images)}.")
    mu, logvar = encode_images(params, images)
    recon_path = figures.reconstruction_grid(params, images[:num_images], out_dir / RECONSTRUCTION_FILE,
                                             mu=mu[:num_images])
    samples_path = figures.samples_grid(params, num_samples, seed, out_dir / SAMPLES_FILE)
    kl = mean_kl_per_dimension(mu, logvar)
    num_dims = min(traverse_dims, mu.shape[1])
    labels = factor_labels(mu, factors[1], factors[0], rank_dimensions(kl)[:num_dims]) \
        if factors is not None else None
    if traverse_dims > num_dims:
        print(f"note: the model has {num_dims} latent dimensions, so all {num_dims} are traversed instead of "
              f"{traverse_dims}.", file=sys.stderr)
    traversal_path, dims = figures.traversal_grid(params, images[traverse_index], kl, out_dir / TRAVERSAL_FILE,
                                                  mu=mu[traverse_index], num_dims=num_dims, steps=traverse_steps,
                                                  relative=traverse_relative, index=traverse_index, labels=labels)
    return {"reconstruction": recon_path, "samples": samples_path, "traversals": traversal_path,
            "kl_per_dim": kl, "traversed_dims": dims}


def _run(argv):
    args = build_parser().parse_args(argv)
    cli.out_dir(args.out_dir)
    checkpoint, data = cli.load_for_script(args, max(args.num_images, args.rank_images, args.traverse_index + 1),
                                           note=False)
    if data.note and args.traverse_index < len(data.images):  # else evaluate() refuses the index: no note first
        print(f"note: {data.note}.", file=sys.stderr)
    module = imagedata.GENERATED.get(data.dataset)
    factors = (module.FACTOR_NAMES, module.split_factors(data.split, len(data.images))) if module else None
    result = evaluate(checkpoint.params, data.images, args.out_dir, num_images=args.num_images,
                      num_samples=args.num_samples, seed=args.seed, traverse_dims=args.traverse_dims,
                      traverse_steps=args.traverse_steps, traverse_index=args.traverse_index,
                      traverse_relative=args.traverse_relative, factors=factors)
    print(f"checkpoint {checkpoint.describe()}, {data.dataset} {data.split} split")
    for key in ("reconstruction", "samples", "traversals"):
        print(f"wrote {result[key]}")
    return result


def main(argv=None) -> int:
    return cli.run_main(_run, argv)


if __name__ == "__main__":
    sys.exit(main())
