"""The β-VAE objective: summed squared error per image plus β times the Gaussian KL.

    recon_n = Σ_pixels (x̂_n − x_n)²
    kl_nd   = −½ (1 + log σ²_nd − μ²_nd − σ²_nd)          kl_n = Σ_d kl_nd
    loss    = (1/N) Σ_n (recon_n + β · kl_n)     (the negative ELBO, up to constants, for β = 1)

This file is the one place these formulas are written: training, validation and every metric
call ``per_image``, ``kl_per_dimension`` and ``negative_elbo``.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .precision import accumulation_dtype

DEFAULT_BETA = 0.5  # the seed's KL weight


def residual(x_hat, x):
    """x̂ − x, in at least float32 (bfloat16 activations: the sums over 12,288 pixels still run in float32)."""
    acc = accumulation_dtype(x_hat.dtype)
    return x_hat.astype(acc) - jnp.asarray(x).astype(acc)


def squared_error(diff):
    """recon_n = Σ_pixels diff², (N,) of a residual (N, ...)."""
    return jnp.sum(diff * diff, axis=tuple(range(1, diff.ndim)))


def kl_per_dimension(mu, logvar):
    """KL(N(μ, σ²) ‖ N(0, 1)) of each latent dimension of each image, (N, D).

    NumPy arrays stay NumPy (the metrics take it in float64), JAX arrays JAX.
    """
    acc = accumulation_dtype(mu.dtype)
    mu, logvar = mu.astype(acc), logvar.astype(acc)
    exp = np.exp if isinstance(logvar, np.ndarray) else jnp.exp
    return -0.5 * (1 + logvar - mu * mu - exp(logvar))


def per_image(x_hat, x, mu, logvar):
    """(recon, kl), each (N,): the squared error summed over pixels and the KL from N(0, I), per image."""
    return squared_error(residual(x_hat, x)), kl_per_dimension(mu, logvar).sum(axis=1)


def negative_elbo(recon, kl, beta):
    """The β-VAE loss recon + β·kl (per image, or of their means)."""
    return recon + beta * kl


class ELBOCache(NamedTuple):
    diff: jax.Array    # x̂ − x, (N,C,H,W), at least float32
    mu: jax.Array      # (N, D), at least float32
    logvar: jax.Array  # (N, D), at least float32
    dtype: object      # x̂'s dtype: the gradients go back in it


class ELBO:
    def __init__(self, beta=DEFAULT_BETA):
        self.beta = beta

    def forward(self, x_hat, x, mu, logvar):
        """Returns ({'loss', 'recon', 'kl'} batch means, cache)."""
        diff = residual(x_hat, x)
        recon, kl = squared_error(diff).mean(), kl_per_dimension(mu, logvar).sum(axis=1).mean()
        acc = diff.dtype
        cache = ELBOCache(diff, mu.astype(acc), logvar.astype(acc), x_hat.dtype)
        return {"loss": negative_elbo(recon, kl, self.beta), "recon": recon, "kl": kl}, cache

    def backward(self, cache, dloss=1.0):
        """Gradients of the loss in x̂, μ and log σ², in the dtype x̂ came in."""
        n = cache.diff.shape[0]
        scale = dloss / n
        dx_hat = 2 * scale * cache.diff  # ∂recon/∂x̂ = 2(x̂ − x)/N
        dmu = self.beta * scale * cache.mu  # ∂(β·kl)/∂μ = β·μ/N
        dlogvar = self.beta * scale * 0.5 * (jnp.exp(cache.logvar) - 1)  # ∂(β·kl)/∂logσ² = β·½(σ² − 1)/N
        return dx_hat.astype(cache.dtype), dmu.astype(cache.dtype), dlogvar.astype(cache.dtype)
