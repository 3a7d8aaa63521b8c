"""Evaluating a model over many images: fixed-size chunks, per-image statistics, the metrics table.

Everything here runs the model through ``model.reconstruct`` (decoding μ, no sampling noise) in
chunks of one size, the last one padded, so each function compiles once per chunk size.
"""
from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

import model
from model.elbo import negative_elbo, residual, squared_error
from system.errors import UserError
from system.xla import compiled

from .image_metrics import ACTIVE_THRESHOLD, active_units, mean_kl_per_dimension, psnr, ssim, ssim_global

CHUNK = 250
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


def encode_images(params, images, size: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """(mu, logvar) as float32 NumPy (N, D) of uint8 or [0, 1] images (N, 3, H, W)."""
    vae = model.vae_of(params)
    out = map_chunks(lambda x: dict(zip(("mu", "logvar"), vae.encode(params, x))), images, size)
    return out["mu"], out["logvar"]


def decode_latents(params, z, size: int = CHUNK) -> np.ndarray:
    """Decoded images (N, 3, H, W) float32 in [0, 1] of latent codes (N, D)."""
    vae = model.vae_of(params)
    out = map_chunks(lambda c: {"x": vae.decode(params, c)}, np.asarray(z, np.float32), size)
    return np.clip(out["x"], 0.0, 1.0)


def loss_on(params, images, beta: float, size: int = 256) -> dict:
    """Mean recon, KL and loss recon + β·KL over ``images`` (uint8), decoding μ."""
    vae = model.vae_of(params)
    stats = map_chunks(lambda x: {k: v for k, v in vae.reconstruct(params, x).items() if k in ("recon", "kl")},
                       images, size)
    recon, kl = float(stats["recon"].mean()), float(stats["kl"].mean())
    return {"loss": negative_elbo(recon, kl, beta), "recon": recon, "kl": kl}


def _quality(x_hat, x):
    """Per-image quality of outputs ``x_hat`` against images ``x`` (both float (N,3,H,W) in [0, 1])."""
    return {"ssim": ssim(x_hat, x), "ssim_global": ssim_global(x_hat, x), "psnr": psnr(x_hat, x),
            "recon_rgb": jnp.mean(x_hat, axis=(2, 3)), "original_rgb": jnp.mean(x, axis=(2, 3))}


@functools.partial(compiled, static_argnums=0)
def _image_stats(vae, params, x):
    """Per-image statistics of one chunk, reconstructed from μ by ``vae`` (a model.VAE)."""
    out = dict(vae.reconstruct(params, x))
    x_hat = out.pop("x_hat")
    return dict(out, **_quality(x_hat, model.to_float(x)))


@compiled
def _constant_stats(output, x):
    """Per-image statistics of one fixed output image (3,H,W) for every image of the chunk."""
    x = model.to_float(x)
    x_hat = jnp.broadcast_to(output, x.shape)
    return dict(recon=squared_error(residual(x_hat, x)), **_quality(x_hat, x))


def _summary(stats) -> dict:
    """The image-quality part of the metrics (the keys a baseline shares with the model)."""
    ssim_mean, ssim_std = _mean_std(stats["ssim"])
    psnr_mean, psnr_std = _mean_std(stats["psnr"])
    recon_mean, recon_std = _mean_std(stats["recon"])
    return {"ssim": ssim_mean, "ssim_std": ssim_std, "ssim_global": _mean_std(stats["ssim_global"])[0],
            "psnr": psnr_mean, "psnr_std": psnr_std, "recon_loss": recon_mean, "recon_loss_std": recon_std,
            "channel_means": {
                "reconstruction": [float(v) for v in stats["recon_rgb"].mean(axis=0, dtype=np.float64)],
                "original": [float(v) for v in stats["original_rgb"].mean(axis=0, dtype=np.float64)]}}


def baselines(images, mean_image, size: int = CHUNK) -> dict:
    """The metrics of two outputs that ignore the input, on the same ``images``:
    ``mean_image`` (float (3,H,W) in [0, 1], the mean training image) and black."""
    outputs = {"mean_image": np.asarray(mean_image, np.float32),
               "black": np.zeros(images.shape[1:], np.float32)}
    return {name: _summary(map_chunks(lambda x, out=out: _constant_stats(out, x), images, size))
            for name, out in outputs.items()}


def mean_image(images, size: int = 4096) -> np.ndarray:
    """The mean of uint8 images (N,3,H,W) as float32 (3,H,W) in [0, 1], summed in chunks."""
    total = np.zeros(images.shape[1:], np.float64)
    for start in range(0, len(images), size):
        total += np.asarray(images[start:start + size], np.float64).sum(axis=0)
    return (total / (255.0 * max(len(images), 1))).astype(np.float32)


def per_image_stats(params, images, size: int = CHUNK) -> dict:
    """{name: (N, ...) NumPy}: mu, logvar, recon, kl, ssim, ssim_global, psnr, recon_rgb, original_rgb."""
    vae = model.vae_of(params)
    return map_chunks(lambda x: _image_stats(vae, params, x), images, size)


def _mean_std(values) -> tuple[float, float]:
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std())


def compute_metrics(params, images, *, beta: float, size: int = CHUNK, active_threshold=ACTIVE_THRESHOLD) -> dict:
    """The metrics of ``params`` on uint8 (or [0, 1] float) images (N, 3, H, W), N >= 1."""
    if len(images) == 0:
        raise UserError("there are no images to evaluate.")
    stats = per_image_stats(params, images, size)
    kl_dims = mean_kl_per_dimension(stats["mu"], stats["logvar"])
    active, variances = active_units(stats["mu"], active_threshold)
    summary = _summary(stats)
    kl_mean = _mean_std(stats["kl"])[0]
    return {
        **summary, "kl": kl_mean, "beta": float(beta), "elbo": negative_elbo(summary["recon_loss"], kl_mean, float(beta)),
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
    """The headline metrics as a Markdown table; with ``m['baselines']``, a column for each baseline."""
    base = m.get("baselines") or {}
    top = ", ".join(f"z{d}: {m['kl_per_dim'][d]:.3f}" for d in m["dims_by_kl"][:TABLE_TOP_DIMS])
    where = f"{m['num_images']} ({m.get('dataset', '?')} {m.get('split', '?')} split)"
    if m.get("num_images_requested", m["num_images"]) > m["num_images"]:
        where += f", {m['num_images_requested']} asked"
    checkpoint = str(m.get("checkpoint", "?")) + ("" if m.get("epoch") is None else f" (epoch {m['epoch']})")
    shared = [  # (label, key, format, with ± std) of the metrics a baseline has too
        ("SSIM (Wang et al. 2004, 11×11 Gaussian window)", "ssim", ".4f", True),
        ("global SSIM (seed's definition, single window)", "ssim_global", ".4f", False),
        ("PSNR (dB, mean of per-image)", "psnr", ".2f", True),
        ("reconstruction loss (Σ squared error per image)", "recon_loss", ".2f", False),
    ]
    cell = lambda d, key, spec, std: f"{d[key]:{spec}}" + (f" ± {d[key + '_std']:{spec}}" if std else "")
    rows = [[label, cell(m, key, spec, std)] + [cell(b, key, spec, False) for b in base.values()]
            for label, key, spec, std in shared]
    rows += [[label, value] + [""] * len(base) for label, value in [
        ("KL per image (nats)", f"{m['kl']:.3f}"),
        (f"ELBO loss, recon + β·KL (β = {m['beta']:g})", f"{m['elbo']:.2f}"),
        ("channel means R / G / B, reconstruction", _rgb(m["channel_means"]["reconstruction"])),
        ("channel means R / G / B, original", _rgb(m["channel_means"]["original"])),
        (f"active latent units (Var μ > {m['active_threshold']:g})", f"{m['active_units']} / {m['latent_dim']}"),
        (f"KL of the top {min(TABLE_TOP_DIMS, m['latent_dim'])} dimensions (nats)", top),
        ("images", where),
        ("checkpoint", checkpoint),
    ]]
    header = ["metric", "model"] + [f"{name.replace('_', ' ')} (baseline)" for name in base]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])
