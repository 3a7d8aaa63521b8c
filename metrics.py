"""Reconstruction and latent-usage metrics of a trained β-VAE on held-out images.

On the first ``--num-images`` images of the test split (default 1,000; all of them when the
split is smaller, which is then said), each image is encoded to its posterior mean μ and
decoded from μ -- deterministic, no sampling. Reported, as a Markdown table on stdout and
in full in ``<out-dir>/metrics.json``:

* SSIM (Wang et al. 2004: 11x11 Gaussian window, σ 1.5), mean over images;
* global SSIM: one window over the whole image -- the seed's definition, not comparable
  with SSIM, kept only to reproduce that earlier figure;
* PSNR in dB, mean of the per-image values;
* reconstruction loss: squared error summed over each image's pixels, mean over images;
* KL(q(z|x) || N(0, I)) per image, mean over images;
* the β-VAE loss recon + β·KL (the negative ELBO for β = 1) with the checkpoint's β;
* channel balance: mean R, G, B of the reconstructions and of the originals;
* active latent units, Var_x(μ_j) > 0.01 (Burda et al. 2016), and the KL of each latent
  dimension (all in the JSON, the largest few in the table);
* the split, the number of images used, the checkpoint and its epoch.

Examples::

    python metrics.py
    python metrics.py --num-images 5000 --weights weights/epoch_20
    python metrics.py --dataset celeba --split val --out-dir results/val
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import script_utils as su
from image_metrics import active_units, kl_per_dimension, psnr, ssim, ssim_global
from model import decode, encode, to_float, xla_options

METRICS_FILE = "metrics.json"
ACTIVE_THRESHOLD = 0.01
TABLE_TOP_DIMS = 5


def build_parser():
    parser = su.make_parser(__doc__)
    su.add_checkpoint_arguments(parser)
    group = parser.add_argument_group("metrics")
    group.add_argument("--num-images", type=su.positive_int, default=1000, metavar="N",
                       help="held-out images to evaluate, the first ones of the split (default: 1000)")
    group.add_argument("--batch-size", type=su.positive_int, default=su.DEFAULT_BATCH_SIZE, metavar="N",
                       help=f"images encoded/decoded per call (default: {su.DEFAULT_BATCH_SIZE})")
    group.add_argument("--active-threshold", type=float, default=ACTIVE_THRESHOLD, metavar="V",
                       help=f"a latent unit is active when the variance of its μ over the images exceeds "
                            f"this (default: {ACTIVE_THRESHOLD})")
    return parser


@xla_options.jit
def _chunk_stats(params, x):
    """Per-image statistics of one chunk of images, reconstructed from μ."""
    x = to_float(x)
    mu, logvar = encode(params, x)
    x_hat = decode(params, mu)
    diff = x_hat - x
    return {
        "mu": mu,
        "logvar": logvar,
        "recon": jnp.sum(diff * diff, axis=(1, 2, 3)),
        "kl": -0.5 * jnp.sum(1.0 + logvar - mu * mu - jnp.exp(logvar), axis=1),
        "ssim": ssim(x_hat, x),
        "ssim_global": ssim_global(x_hat, x),
        "psnr": psnr(x_hat, x),
        "recon_rgb": jnp.mean(x_hat, axis=(2, 3)),
        "original_rgb": jnp.mean(x, axis=(2, 3)),
    }


def per_image_stats(params, images, batch_size=su.DEFAULT_BATCH_SIZE) -> dict:
    """{name: (N, ...) NumPy array} of ``_chunk_stats`` over all images, in fixed-size chunks."""
    parts = []
    for start, stop, size in su.chunks(len(images), batch_size):
        stats = _chunk_stats(params, jnp.asarray(su.pad_to(images[start:stop], size)))
        parts.append({k: np.asarray(v)[: stop - start] for k, v in stats.items()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _mean_std(values) -> tuple[float, float]:
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std())


def compute_metrics(params, images, *, beta: float, batch_size=su.DEFAULT_BATCH_SIZE,
                    active_threshold=ACTIVE_THRESHOLD) -> dict:
    """The metrics of ``params`` on uint8 (or [0, 1] float) images (N, 3, H, W), N >= 1."""
    if len(images) == 0:
        raise su.ScriptError("there are no images to evaluate.")
    stats = per_image_stats(params, images, batch_size)
    kl_dims = kl_per_dimension(stats["mu"], stats["logvar"])
    active, variances = active_units(stats["mu"], active_threshold)
    ssim_mean, ssim_std = _mean_std(stats["ssim"])
    psnr_mean, psnr_std = _mean_std(stats["psnr"])
    recon_mean, recon_std = _mean_std(stats["recon"])
    kl_mean, _ = _mean_std(stats["kl"])
    ranking = np.argsort(-kl_dims, kind="stable")
    return {
        "ssim": ssim_mean,
        "ssim_std": ssim_std,
        "ssim_global": _mean_std(stats["ssim_global"])[0],
        "psnr": psnr_mean,
        "psnr_std": psnr_std,
        "recon_loss": recon_mean,
        "recon_loss_std": recon_std,
        "kl": kl_mean,
        "beta": float(beta),
        "elbo": recon_mean + float(beta) * kl_mean,
        "channel_means": {
            "reconstruction": [float(v) for v in stats["recon_rgb"].mean(axis=0, dtype=np.float64)],
            "original": [float(v) for v in stats["original_rgb"].mean(axis=0, dtype=np.float64)],
        },
        "active_units": int(active),
        "active_threshold": float(active_threshold),
        "latent_dim": int(stats["mu"].shape[1]),
        "kl_per_dim": [float(v) for v in kl_dims],
        "mu_variance_per_dim": [float(v) for v in variances],
        "dims_by_kl": [int(d) for d in ranking],
        "num_images": int(len(images)),
    }


def _rgb(values) -> str:
    return " / ".join(f"{v:.3f}" for v in values)


def markdown_table(m: dict) -> str:
    """The headline metrics as a two-column Markdown table."""
    top = ", ".join(f"z{d}: {m['kl_per_dim'][d]:.3f}" for d in m["dims_by_kl"][:TABLE_TOP_DIMS])
    where = f"{m['num_images']} ({m.get('dataset', '?')} {m.get('split', '?')} split)"
    if m.get("num_images_requested", m["num_images"]) > m["num_images"]:
        where += f", {m['num_images_requested']} asked"
    checkpoint = str(m.get("checkpoint", "?")) + ("" if m.get("epoch") is None else f" (epoch {m['epoch']})")
    rows = [
        ("SSIM (Wang et al. 2004, 11×11 Gaussian window)", f"{m['ssim']:.4f} ± {m['ssim_std']:.4f}"),
        ("global SSIM (seed's definition, single window)", f"{m['ssim_global']:.4f}"),
        ("PSNR (dB, mean of per-image)", f"{m['psnr']:.2f} ± {m['psnr_std']:.2f}"),
        ("reconstruction loss (Σ squared error per image)", f"{m['recon_loss']:.2f}"),
        ("KL per image (nats)", f"{m['kl']:.3f}"),
        (f"ELBO loss, recon + β·KL (β = {m['beta']:g})", f"{m['elbo']:.2f}"),
        ("channel means R / G / B, reconstruction", _rgb(m["channel_means"]["reconstruction"])),
        ("channel means R / G / B, original", _rgb(m["channel_means"]["original"])),
        (f"active latent units (Var μ > {m['active_threshold']:g})", f"{m['active_units']} / {m['latent_dim']}"),
        (f"KL of the top {min(TABLE_TOP_DIMS, m['latent_dim'])} dimensions (nats)", top),
        ("images", where),
        ("checkpoint", checkpoint),
    ]
    width = max(len(name) for name, _ in rows)
    vwidth = max(len(value) for _, value in rows)
    lines = [f"| {'metric'.ljust(width)} | {'value'.ljust(vwidth)} |", f"|{'-' * (width + 2)}|{'-' * (vwidth + 2)}|"]
    lines += [f"| {name.ljust(width)} | {value.ljust(vwidth)} |" for name, value in rows]
    return "\n".join(lines)


def _finite(obj):
    """JSON-safe copy: non-finite floats become None."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _run(argv):
    args = build_parser().parse_args(argv)
    checkpoint = su.load(args)
    options = su.data_options(args, checkpoint.config)
    data = su.load_images(options, args.split, args.num_images)
    su.check_image_size(checkpoint, data.images)
    if data.note:
        print(f"note: {data.note}.", file=sys.stderr)
    result = compute_metrics(checkpoint.params, data.images, beta=checkpoint.beta, batch_size=args.batch_size,
                             active_threshold=args.active_threshold)
    result.update({
        "dataset": data.dataset,
        "split": data.split,
        "num_images_requested": data.requested,
        "note": data.note,
        "checkpoint": str(checkpoint.path),
        "epoch": checkpoint.epoch,
    })
    print(markdown_table(result))
    path = su.write_json(Path(args.out_dir) / METRICS_FILE, _finite(result))
    print(f"\nwrote {path}")
    return result


def main(argv=None) -> int:
    return su.run_main(_run, argv)


if __name__ == "__main__":
    sys.exit(main())
