"""Evaluating a model over many images: fixed-size chunks, per-image statistics, the metrics table.

Everything here runs the model through ``model.reconstruct`` (decoding μ, no sampling noise) in
chunks of one size, the last one padded, so each function compiles once per chunk size.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from model import decode, encode, reconstruct, to_float
from system.errors import UserError
from system.xla import compiled

from .image_metrics import active_units, kl_per_dimension, psnr, ssim, ssim_global

CHUNK = 250
ACTIVE_THRESHOLD = 0.01
TABLE_TOP_DIMS = 5


def chunks(n: int, size: int = CHUNK):
    """(start, stop, padded size) covering ``range(n)``; every chunk is padded to one size."""
    size = max(1, min(size, n))
    for start in range(0, n, size):
        yield start, min(start + size, n), size


def pad_to(x, size: int) -> np.ndarray:
    """``x`` with zero rows appended up to ``size`` rows."""
    x = np.asarray(x)
    if len(x) == size:
        return x
    return np.concatenate([x, np.zeros((size - len(x),) + x.shape[1:], x.dtype)])


def map_chunks(fn, x, size: int = CHUNK) -> dict:
    """{name: (N, ...) NumPy} of ``fn(chunk) -> {name: (n, ...)}`` over ``x`` in padded chunks."""
    parts = []
    for start, stop, padded in chunks(len(x), size):
        out = fn(pad_to(x[start:stop], padded))
        parts.append({k: np.asarray(v)[: stop - start] for k, v in out.items()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def encode_all(params, images, size: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """(mu, logvar) as float32 NumPy (N, D) of uint8 or [0, 1] images (N, 3, H, W)."""
    out = map_chunks(lambda x: dict(zip(("mu", "logvar"), encode(params, x))), images, size)
    return out["mu"], out["logvar"]


def decode_all(params, z, size: int = CHUNK) -> np.ndarray:
    """Decoded images (N, 3, H, W) float32 in [0, 1] of latent codes (N, D)."""
    out = map_chunks(lambda c: {"x": decode(params, c)}, np.asarray(z, np.float32), size)
    return np.clip(out["x"], 0.0, 1.0)


def loss_on(params, images, beta: float, size: int = 256) -> dict:
    """Mean recon, KL and loss recon + β·KL over ``images`` (uint8), decoding μ."""
    stats = map_chunks(lambda x: {k: v for k, v in reconstruct(params, x).items() if k in ("recon", "kl")},
                       images, size)
    recon, kl = float(stats["recon"].mean()), float(stats["kl"].mean())
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl}


@compiled
def _image_stats(params, x):
    """Per-image statistics of one chunk, reconstructed from μ."""
    out = reconstruct(params, x)
    x, x_hat = to_float(x), out.pop("x_hat")
    return dict(out, ssim=ssim(x_hat, x), ssim_global=ssim_global(x_hat, x), psnr=psnr(x_hat, x),
                recon_rgb=jnp.mean(x_hat, axis=(2, 3)), original_rgb=jnp.mean(x, axis=(2, 3)))


def per_image_stats(params, images, size: int = CHUNK) -> dict:
    """{name: (N, ...) NumPy}: mu, logvar, recon, kl, ssim, ssim_global, psnr, recon_rgb, original_rgb."""
    return map_chunks(lambda x: _image_stats(params, x), images, size)


def _mean_std(values) -> tuple[float, float]:
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std())


def compute_metrics(params, images, *, beta: float, size: int = CHUNK, active_threshold=ACTIVE_THRESHOLD) -> dict:
    """The metrics of ``params`` on uint8 (or [0, 1] float) images (N, 3, H, W), N >= 1."""
    if len(images) == 0:
        raise UserError("there are no images to evaluate.")
    stats = per_image_stats(params, images, size)
    kl_dims = kl_per_dimension(stats["mu"], stats["logvar"])
    active, variances = active_units(stats["mu"], active_threshold)
    ssim_mean, ssim_std = _mean_std(stats["ssim"])
    psnr_mean, psnr_std = _mean_std(stats["psnr"])
    recon_mean, recon_std = _mean_std(stats["recon"])
    kl_mean = _mean_std(stats["kl"])[0]
    return {
        "ssim": ssim_mean, "ssim_std": ssim_std, "ssim_global": _mean_std(stats["ssim_global"])[0],
        "psnr": psnr_mean, "psnr_std": psnr_std, "recon_loss": recon_mean, "recon_loss_std": recon_std,
        "kl": kl_mean, "beta": float(beta), "elbo": recon_mean + float(beta) * kl_mean,
        "channel_means": {
            "reconstruction": [float(v) for v in stats["recon_rgb"].mean(axis=0, dtype=np.float64)],
            "original": [float(v) for v in stats["original_rgb"].mean(axis=0, dtype=np.float64)],
        },
        "active_units": int(active), "active_threshold": float(active_threshold),
        "latent_dim": int(stats["mu"].shape[1]),
        "kl_per_dim": [float(v) for v in kl_dims],
        "mu_variance_per_dim": [float(v) for v in variances],
        "dims_by_kl": [int(d) for d in np.argsort(-kl_dims, kind="stable")],
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
