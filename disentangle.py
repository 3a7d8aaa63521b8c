"""Disentanglement scores of a β-VAE trained on the embedded shapes dataset.

The shapes are rendered from six known factors (shape, scale, orientation, pos_x, pos_y,
colour; see ``shapes.py``), so how well the latent code separates them can be measured:

β-VAE metric (Higgins et al. 2017)
    Each example fixes one factor k, draws ``--pairs`` pairs of images that agree on k and
    differ at random elsewhere, and averages |μ(x1) − μ(x2)| over the pairs. A linear
    classifier (softmax regression with a hand-written gradient) learns to name k from that
    average on ``--num-train`` examples; the score is its accuracy on ``--num-test`` fresh
    examples. Chance is 1/6 (six factors).
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
``weights/epoch_N/`` is scored unless ``--weights`` names another checkpoint. A checkpoint
trained on CelebA is refused: its generative factors are unknown. With the default sample
sizes about 106,000 images are rendered and encoded: about a minute on a 2-core CPU for a small
model (channels 16 32 64), several minutes for the seed's architecture.

Examples::

    python train.py --dataset shapes          # a checkpoint to score, in weights/
    python disentangle.py
    python disentangle.py --weights weights/epoch_2 --out-dir results/epoch_2
    python disentangle.py --num-train 200 --num-test 100 --pairs 16 --mig-samples 2000   # quick look
    python disentangle.py --mig-bins 20 --seed 1
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

import shapes
from disentangle_metrics import beta_vae_score, mig
from image_metrics import active_units
from load_data import positive_int
from model import CheckpointError, architecture, encode, heap, load_checkpoint
from script_utils import write_json

RESULTS_FILE = "disentanglement.json"
DEFAULT_SIZES = {"num_train": 1000, "num_test": 500, "pairs": 32, "mig_samples": 10000, "mig_bins": 40}
ACTIVE_THRESHOLD = 0.01
ENCODE_CHUNK = 256


class ScoreError(ValueError):
    """A checkpoint or request that cannot be scored, with one sentence saying why."""


# --------------------------------------------------------------------------- scoring

def encode_means(params, images, chunk: int = ENCODE_CHUNK) -> np.ndarray:
    """Posterior means μ (N, D) float64 of uint8 images (N, 3, 64, 64).

    Images go through the encoder in chunks of ``chunk``; the last chunk is padded, so one
    compiled shape serves every call.
    """
    images = np.asarray(images)
    out = []
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk]
        n = len(x)
        if n < chunk:
            x = np.concatenate([x, np.zeros((chunk - n,) + x.shape[1:], x.dtype)])
        mu, _ = encode(params, x)
        out.append(np.asarray(mu, np.float64)[:n])
    if not out:
        return np.zeros((0, architecture(params)["latent_dim"]))
    return np.concatenate(out)


def check_shapes_model(params) -> None:
    """Raise ScoreError unless the model takes 64x64 RGB images, as the shapes are."""
    arch = architecture(params)
    if arch["in_channels"] != 3 or arch["image_size"] != shapes.IMAGE_SIZE:
        raise ScoreError(f"The model takes {arch['in_channels']}x{arch['image_size']}x{arch['image_size']} images, "
                         f"but the shapes are 3x{shapes.IMAGE_SIZE}x{shapes.IMAGE_SIZE}.")


def score(params, *, seed: int = 0, rng: np.random.Generator | None = None,
          num_train: int = DEFAULT_SIZES["num_train"], num_test: int = DEFAULT_SIZES["num_test"],
          pairs: int = DEFAULT_SIZES["pairs"], mig_samples: int = DEFAULT_SIZES["mig_samples"],
          mig_bins: int = DEFAULT_SIZES["mig_bins"], examples_per_batch: int = 16) -> dict:
    """β-VAE metric, MIG and active units of the encoder ``params`` on the shapes factors.

    Args:
      params: model parameters (any architecture taking 3x64x64 images).
      seed: seeds two independent streams, one for the β-VAE metric and one for the MIG
        draws; ignored when ``rng`` is given, which then feeds both in turn.
      num_train, num_test: examples to fit and to test the β-VAE metric's classifier.
      pairs: image pairs averaged per β-VAE-metric example (L in the paper).
      mig_samples: uniform factor draws whose posterior means give MIG and active units.
      mig_bins: equal-width bins per latent dimension for MIG.
      examples_per_batch: β-VAE-metric examples rendered and encoded together.

    Returns a JSON-able dict::

      {"beta_vae": {train_accuracy, test_accuracy, chance, num_train, num_test, pairs},
       "mig": {mig, bins, samples, per_factor {name: gap}, best_latent {name: j},
               factor_entropy {name: nats}, mi_matrix [[nats] * K] * D},
       "active_units": {count, latent_dim, threshold, variances [D]},
       "factors": {name: number of values}, "seed": seed, "seconds": wall time}
    """
    for name, value in (("num_train", num_train), ("num_test", num_test), ("pairs", pairs),
                        ("mig_samples", mig_samples), ("mig_bins", mig_bins)):
        if int(value) < 1:
            raise ScoreError(f"{name} must be a positive whole number, not {value}.")
    if mig_samples < 2:
        raise ScoreError("mig_samples must be at least 2 to measure any variation.")
    check_shapes_model(params)
    if rng is None:
        beta_rng, mig_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    else:
        beta_rng = mig_rng = rng
    start = time.perf_counter()

    bvae = beta_vae_score(lambda images: encode_means(params, images), shapes.sample_factors, shapes.render,
                          shapes.FACTOR_SIZES, rng=beta_rng, num_train=int(num_train), num_test=int(num_test),
                          pairs=int(pairs), examples_per_batch=int(examples_per_batch))

    factors = shapes.sample_factors(mig_rng, int(mig_samples))
    mu = encode_means(params, shapes.render(factors))
    gap = mig(mu, factors, num_bins=int(mig_bins))
    count, variances = active_units(mu, threshold=ACTIVE_THRESHOLD)

    names = shapes.FACTOR_NAMES
    mi = np.asarray(gap["mi_matrix"])
    finite = lambda v: None if not math.isfinite(float(v)) else float(v)
    return {
        "beta_vae": {"train_accuracy": float(bvae["train_accuracy"]), "test_accuracy": float(bvae["test_accuracy"]),
                     "chance": 1.0 / sum(1 for s in shapes.FACTOR_SIZES if s > 1),
                     "num_train": int(num_train), "num_test": int(num_test), "pairs": int(pairs)},
        "mig": {"mig": finite(gap["mig"]), "bins": int(mig_bins), "samples": int(mig_samples),
                "per_factor": {n: finite(v) for n, v in zip(names, gap["per_factor"])},
                "best_latent": {n: int(np.argmax(mi[:, k])) for k, n in enumerate(names)},
                "factor_entropy": {n: float(v) for n, v in zip(names, gap["factor_entropy"])},
                "mi_matrix": mi.tolist()},
        "active_units": {"count": int(count), "latent_dim": int(mu.shape[1]), "threshold": ACTIVE_THRESHOLD,
                         "variances": np.asarray(variances, np.float64).tolist()},
        "factors": dict(zip(names, (int(s) for s in shapes.FACTOR_SIZES))),
        "seed": int(seed) if rng is None else None,
        "seconds": time.perf_counter() - start,
    }


# --------------------------------------------------------------------------- report

def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _num(x, digits=3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def markdown(result: dict, title: str | None = None) -> str:
    """The scores of ``score`` (plus optional checkpoint facts) as Markdown tables."""
    b, g, a = result["beta_vae"], result["mig"], result["active_units"]
    lines = [f"### {title}", ""] if title else []
    lines += [
        "| metric | value |",
        "|---|---|",
        f"| β-VAE metric (Higgins et al. 2017), test accuracy | {_pct(b['test_accuracy'])} "
        f"(train {_pct(b['train_accuracy'])}; chance {_pct(b['chance'])}) |",
        f"| MIG (Chen et al. 2018), {g['bins']} bins | {_num(g['mig'])} |",
        f"| active units (Var μ > {a['threshold']}) | {a['count']} / {a['latent_dim']} |",
        "",
        f"β-VAE metric: {b['num_train']} training and {b['num_test']} test examples of {b['pairs']} pairs each. "
        f"MIG and active units: posterior means of {g['samples']} uniform factor draws, "
        f"{g['bins']} equal-width bins per latent.",
        "",
        "| factor | values | H (nats) | MIG | most informative latent |",
        "|---|---|---|---|---|",
    ]
    for name in g["per_factor"]:
        lines.append(f"| {name} | {result['factors'][name]} | {g['factor_entropy'][name]:.2f} | "
                     f"{_num(g['per_factor'][name])} | z{g['best_latent'][name]} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ckpt = parser.add_argument_group("checkpoint")
    ckpt.add_argument("--weights", default=None, metavar="PATH",
                      help="a params.npz file or an epoch_N folder to score "
                           "(default: the newest epoch_N/ in --weights-dir)")
    ckpt.add_argument("--weights-dir", default="weights", metavar="DIR",
                      help="folder of the training run, holding epoch_N/params.npz (default: weights)")
    parser.add_argument("--out-dir", default="results", metavar="DIR",
                        help=f"folder {RESULTS_FILE} is written to (default: results)")
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
    sizes.add_argument("--mig-bins", type=positive_int, default=DEFAULT_SIZES["mig_bins"],
                       help=f"equal-width bins per latent for MIG; 20 in the paper's code "
                            f"(default: {DEFAULT_SIZES['mig_bins']}, the size of the largest factor)")
    sizes.add_argument("--seed", type=int, default=0, help="seed of all factor draws (default: 0)")
    return parser


def _epoch_of(path: Path):
    name = path.parent.name
    suffix = name[len("epoch_"):]
    return int(suffix) if name.startswith("epoch_") and suffix.isdigit() else None


def load_shapes_checkpoint(weights=None, weights_dir="weights"):
    """(params, config, path) of a checkpoint trained on shapes; CheckpointError/ScoreError otherwise."""
    params, config, path = load_checkpoint(weights, weights_dir)
    config = config if isinstance(config, dict) else {}
    dataset = (config.get("data") or {}).get("dataset")
    if dataset is not None and dataset != "shapes":
        raise ScoreError(f"{path} was trained on {dataset}, whose generative factors are unknown, so it cannot be "
                         f"scored; score a model trained with `python train.py --dataset shapes` instead.")
    check_shapes_model(params)
    return params, config, Path(path)


def run(args) -> dict:
    params, config, path = load_shapes_checkpoint(args.weights, args.weights_dir)
    train_cfg = config.get("train") or {}
    result = score(params, seed=args.seed, num_train=args.num_train, num_test=args.num_test, pairs=args.pairs,
                   mig_samples=args.mig_samples, mig_bins=args.mig_bins)
    result["checkpoint"] = {"path": str(path), "epoch": _epoch_of(path), "beta": train_cfg.get("beta"),
                            "architecture": {k: list(v) if isinstance(v, tuple) else v
                                             for k, v in architecture(params).items()}}
    beta = train_cfg.get("beta")
    title = f"{path}" + (f" (β = {beta:g})" if isinstance(beta, (int, float)) else "")
    print(markdown(result, title))
    out = write_json(Path(args.out_dir) / RESULTS_FILE, result)
    print(f"wrote {out}")
    return result


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    heap.keep_freed_memory()  # before the first computation (model/heap.py)
    try:
        run(args)
    except (CheckpointError, ScoreError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
