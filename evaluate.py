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
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import figures
import script_utils as su
from image_metrics import kl_per_dimension

RECONSTRUCTION_FILE = "reconstruction_grid.png"
SAMPLES_FILE = "generated_faces.png"
TRAVERSAL_FILE = "latent_traversals.png"
TRAVERSAL_RANGE = 3.0


def build_parser():
    parser = su.make_parser(__doc__)
    su.add_checkpoint_arguments(parser)
    group = parser.add_argument_group("figures")
    group.add_argument("--num-images", type=su.positive_int, default=8, metavar="N",
                       help="test images in the reconstruction grid (default: 8)")
    group.add_argument("--num-samples", type=su.positive_int, default=64, metavar="N",
                       help="prior samples in the generated grid, laid out as square as possible (default: 64)")
    group.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the prior samples (default: 0)")
    group.add_argument("--traverse-dims", type=su.positive_int, default=8, metavar="N",
                       help="latent dimensions shown in the traversal, those of highest KL (default: 8)")
    group.add_argument("--traverse-steps", type=su.positive_int, default=9, metavar="N",
                       help="values from -3 to +3 given to each traversed dimension (default: 9)")
    group.add_argument("--traverse-index", type=su.non_negative_int, default=0, metavar="N",
                       help="test image whose μ the traversal starts from (default: 0)")
    group.add_argument("--traverse-relative", action="store_true",
                       help="add the values to the image's μ of that dimension instead of replacing it")
    group.add_argument("--rank-images", type=su.positive_int, default=1000, metavar="N",
                       help="test images over which the KL of each dimension is averaged to rank them (default: 1000)")
    group.add_argument("--batch-size", type=su.positive_int, default=su.DEFAULT_BATCH_SIZE, metavar="N",
                       help=f"images encoded/decoded per call (default: {su.DEFAULT_BATCH_SIZE})")
    return parser


# --------------------------------------------------------------------------- #
# The figures, given parameters and images
# --------------------------------------------------------------------------- #


def reconstruction_grid(params, images, path, *, mu=None, indices=None, batch_size=su.DEFAULT_BATCH_SIZE) -> Path:
    """Originals (top row) over their reconstructions decoded from μ (bottom row).

    ``mu``: the images' posterior means when already computed.
    """
    if mu is None:
        mu, _ = su.encode_all(params, images, batch_size)
    recon = su.decode_all(params, mu, batch_size)
    originals = su.as_float(images)
    indices = range(len(images)) if indices is None else indices
    return figures.image_grid([list(originals), list(recon)], path, row_labels=["original", "reconstruction"],
                              col_labels=[f"#{i}" for i in indices],
                              title="Held-out test images and their reconstructions (decoded from μ)")


def prior_samples(params, num_samples: int, seed: int) -> np.ndarray:
    """Decodes (N, 3, H, W) of ``num_samples`` draws z ~ N(0, I) from a NumPy generator seeded with ``seed``.

    (NumPy rather than jax.random: the same draws on every backend, and no PRNG kernel to compile.)
    """
    latent_dim = int(params["encoder.fc_mu.weight"].shape[0])
    z = np.random.default_rng(seed).standard_normal((num_samples, latent_dim), dtype=np.float32)
    return su.decode_all(params, z)


def samples_grid(params, num_samples: int, seed: int, path) -> Path:
    samples = prior_samples(params, num_samples, seed)
    rows, cols = figures.square_layout(num_samples)
    grid = [[samples[r * cols + c] if r * cols + c < num_samples else None for c in range(cols)]
            for r in range(rows)]
    return figures.image_grid(grid, path, title=f"Samples from the prior, z ~ N(0, I) (seed {seed})")


def rank_dimensions(kl) -> np.ndarray:
    """Latent dimensions ordered by KL, highest first (ties: lower index first)."""
    kl = np.asarray(kl, np.float64)
    return np.argsort(-kl, kind="stable")


def traversal_values(steps: int, extent: float = TRAVERSAL_RANGE) -> np.ndarray:
    return np.linspace(-extent, extent, steps) if steps > 1 else np.zeros(1)


def format_value(v: float) -> str:
    """-2.25 -> '-2.25', 3.0 -> '+3', 0.0 -> '0'."""
    text = f"{v:+.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("+0", "-0") else text


def traversal_latents(mu, dims, values, *, relative: bool = False) -> np.ndarray:
    """(len(dims), len(values), D): ``mu`` with dimension ``dims[i]`` set to (or shifted by) each value."""
    mu = np.asarray(mu, np.float32)
    values = np.asarray(values, np.float32)
    z = np.broadcast_to(mu, (len(dims), len(values), mu.shape[-1])).copy()
    for i, d in enumerate(dims):
        z[i, :, d] = mu[d] + values if relative else values
    return z


def traversal_grid(params, image, kl, path, *, mu=None, num_dims=8, steps=9, relative=False,
                   index=0) -> tuple[Path, np.ndarray]:
    """The latent traversal figure around ``image``'s μ (given, or computed here).

    ``kl``: (D,) average KL of each latent dimension, which orders the rows.
    Returns (path, the dimensions shown).
    """
    if mu is None:
        mu = su.encode_all(params, np.asarray(image)[None])[0][0]
    dims = rank_dimensions(kl)[:num_dims]
    values = traversal_values(steps)
    z = traversal_latents(mu, dims, values, relative=relative)
    decoded = su.decode_all(params, z.reshape(-1, z.shape[-1])).reshape(z.shape[:2] + (-1,) + image.shape[-2:])
    original = su.as_float(image)
    grid = [[original if i == 0 else None] + list(decoded[i]) for i in range(len(dims))]
    sign = "Δ" if relative else ""
    col_labels = [f"input #{index}"] + [sign + format_value(v) for v in values]
    row_labels = [f"z{d}   KL {kl[d]:.2f}" for d in dims]
    how = "shifted by" if relative else "set to"
    title = f"Latent traversals: top {len(dims)} dimensions by KL, each {how} -3 ... +3, others at μ"
    return figures.image_grid(grid, path, row_labels=row_labels, col_labels=col_labels, title=title,
                              col_breaks=(0,)), dims


def evaluate(params, images, out_dir, *, num_images=8, num_samples=64, seed=0, traverse_dims=8,
             traverse_steps=9, traverse_index=0, traverse_relative=False,
             batch_size=su.DEFAULT_BATCH_SIZE) -> dict:
    """Write the three figures; ``images`` are held-out uint8 images (N, 3, H, W).

    The first ``num_images`` go in the reconstruction grid; all of them are used to rank the
    latent dimensions by KL. Returns {'reconstruction', 'samples', 'traversals': paths,
    'kl_per_dim': array, 'traversed_dims': array}.
    """
    out_dir = Path(out_dir)
    if traverse_index >= len(images):
        raise su.ScriptError(f"--traverse-index {traverse_index} is past the {len(images)} test images loaded; "
                             f"pick one below {len(images)}.")
    mu, logvar = su.encode_all(params, images, batch_size)
    recon_path = reconstruction_grid(params, images[:num_images], out_dir / RECONSTRUCTION_FILE,
                                     mu=mu[:num_images], batch_size=batch_size)
    samples_path = samples_grid(params, num_samples, seed, out_dir / SAMPLES_FILE)
    kl = kl_per_dimension(mu, logvar)
    latent_dim = mu.shape[1]
    traversal_path, dims = traversal_grid(params, images[traverse_index], kl, out_dir / TRAVERSAL_FILE,
                                          mu=mu[traverse_index],
                                          num_dims=min(traverse_dims, latent_dim), steps=traverse_steps,
                                          relative=traverse_relative, index=traverse_index)
    return {"reconstruction": recon_path, "samples": samples_path, "traversals": traversal_path,
            "kl_per_dim": kl, "traversed_dims": dims}


def _run(argv):
    args = build_parser().parse_args(argv)
    checkpoint = su.load(args)
    options = su.data_options(args, checkpoint.config)
    wanted = max(args.num_images, args.rank_images, args.traverse_index + 1)
    data = su.load_images(options, args.split, wanted)
    su.check_image_size(checkpoint, data.images)
    if data.note:
        print(f"note: {data.note}.", file=sys.stderr)
    result = evaluate(checkpoint.params, data.images, args.out_dir, num_images=args.num_images,
                      num_samples=args.num_samples, seed=args.seed, traverse_dims=args.traverse_dims,
                      traverse_steps=args.traverse_steps, traverse_index=args.traverse_index,
                      traverse_relative=args.traverse_relative, batch_size=args.batch_size)
    print(f"checkpoint {checkpoint.describe()}, {data.dataset} {data.split} split")
    for key in ("reconstruction", "samples", "traversals"):
        print(f"wrote {result[key]}")
    return result


def main(argv=None) -> int:
    return su.run_main(_run, argv)


if __name__ == "__main__":
    sys.exit(main())
