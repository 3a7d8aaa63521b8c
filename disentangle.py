"""Disentanglement scores of a β-VAE trained on an embedded dataset with known factors.

The embedded datasets are rendered from known factors (``imagedata/shapes.py``: shape, scale,
orientation, position, colour), so how well the latent code separates them can be measured
(``analysis/disentanglement.py``):

β-VAE metric (Higgins et al. 2017)
    Each example fixes one factor k, draws ``--pairs`` pairs of images that agree on k and
    differ at random elsewhere, and averages |μ(x1) − μ(x2)| over the pairs. A linear
    classifier (softmax regression with a hand-written gradient) learns to name k from that
    average on ``--num-train`` examples; the score is its accuracy on ``--num-test`` fresh
    examples. Chance is one over the number of factors.
Mutual Information Gap (Chen et al. 2018)
    The posterior means μ of ``--mig-samples`` uniform factor draws are cut into
    ``--mig-bins`` equal-width bins per latent; for each factor the gap between the two
    latents sharing most information with it, divided by the factor's entropy. MIG is the
    mean over factors; the per-factor gaps are reported as well. The paper's reference code
    uses 20 bins, which caps a latent's information at log 20 nats and so keeps the 40
    orientations and 32 positions from ever reaching a gap of 1; the default here is 40
    bins, one per value of the largest factor.
Active units (Burda et al. 2016)
    Latents whose posterior mean varies across those draws with variance above 0.01.

Prints a Markdown table and writes ``disentanglement.json`` into ``--out-dir``. The newest
``weights/epoch_N/`` is scored, on the dataset it was trained on, unless ``--weights`` names
another checkpoint. A checkpoint trained on CelebA is refused: its generative factors are unknown.
With the default sample sizes about 106,000 images are rendered and encoded; the sample-size
flags trade precision for time.

Examples::

    python train.py --dataset faces           # a checkpoint to score, in weights/
    python disentangle.py
    python disentangle.py --weights weights/epoch_2 --out-dir results/epoch_2
    python disentangle.py --num-train 200 --num-test 100 --pairs 16 --mig-samples 2000   # quick look
    python disentangle.py --mig-bins 20 --seed 1
"""
import argparse
import sys
from pathlib import Path

import cli
import imagedata
from analysis.disentanglement import DEFAULT_SIZES, RESULTS_FILE, check_model, markdown, score
from training import RunDir, load_run
from system.arguments import int_at_least, positive_int, seed_int
from system.errors import UserError
from system.files import write_json


def build_parser() -> argparse.ArgumentParser:
    parser = cli.make_parser(__doc__)
    cli.add_weights_arguments(parser)
    parser.add_argument("--out-dir", default=cli.DEFAULT_OUT_DIR, metavar="DIR",
                        help=f"folder {RESULTS_FILE} is written to (default: {cli.DEFAULT_OUT_DIR})")
    sizes = parser.add_argument_group("sample sizes")
    sizes.add_argument("--num-train", type=positive_int, default=DEFAULT_SIZES["num_train"],
                       help=f"β-VAE metric: examples the classifier is trained on (default: {DEFAULT_SIZES['num_train']})")
    sizes.add_argument("--num-test", type=positive_int, default=DEFAULT_SIZES["num_test"],
                       help=f"β-VAE metric: held-out examples it is scored on (default: {DEFAULT_SIZES['num_test']})")
    sizes.add_argument("--pairs", type=positive_int, default=DEFAULT_SIZES["pairs"],
                       help=f"β-VAE metric: image pairs averaged per example, L in the paper "
                            f"(default: {DEFAULT_SIZES['pairs']})")
    sizes.add_argument("--mig-samples", type=positive_int, default=DEFAULT_SIZES["mig_samples"],
                       help=f"factor draws encoded for MIG and active units (default: {DEFAULT_SIZES['mig_samples']})")
    sizes.add_argument("--mig-bins", type=int_at_least(2), default=DEFAULT_SIZES["mig_bins"],
                       help=f"equal-width bins per latent for MIG; 20 in the paper's code "
                            f"(default: {DEFAULT_SIZES['mig_bins']}, the size of the largest factor)")
    sizes.add_argument("--seed", type=seed_int, default=0, help="seed of all factor draws (default: 0)")
    return parser


def load_factor_checkpoint(weights=None, weights_dir=cli.DEFAULT_WEIGHTS_DIR):
    """(params, TrainConfig, path, dataset module) of a checkpoint trained on a dataset with known factors."""
    path = cli.checkpoint_path(weights, weights_dir)
    params, config = load_run(path)
    name = config.data.dataset or cli.DEFAULT_DATASET
    if name not in imagedata.GENERATED:
        raise UserError(f"{path} was trained on {name}, whose generative factors are unknown, so it cannot be "
                        f"scored; score a model trained on one of {', '.join(imagedata.GENERATED)} instead.")
    dataset = imagedata.GENERATED[name]
    check_model(params, dataset)
    return params, config, Path(path), dataset


def _run(argv) -> dict:
    args = build_parser().parse_args(argv)
    cli.out_dir(args.out_dir)
    params, config, path, dataset = load_factor_checkpoint(args.weights, args.weights_dir)
    beta = config.hparams.beta
    result = score(params, dataset, seed=args.seed, num_train=args.num_train, num_test=args.num_test,
                   pairs=args.pairs, mig_samples=args.mig_samples, mig_bins=args.mig_bins)
    result["checkpoint"] = {"path": str(path), "epoch": RunDir.epoch_number(path), "beta": beta,
                            "architecture": config.model.as_dict()}
    title = f"{path} (β = {beta:g})"
    print(markdown(result, title))
    print(f"wrote {write_json(Path(args.out_dir) / RESULTS_FILE, result)}")
    return result


def main(argv=None) -> int:
    return cli.run_main(_run, argv)


if __name__ == "__main__":
    sys.exit(main())
