"""The β-VAE objective: summed squared error per image plus β times the Gaussian KL.

    recon_n = Σ_pixels (x̂_n − x_n)²
    kl_n    = −½ Σ_d (1 + log σ²_nd − μ²_nd − σ²_nd)
    loss    = (1/N) Σ_n (recon_n + β · kl_n)     (the negative ELBO, up to constants, for β = 1)

``per_image`` is the one place these formulas are written; training, validation and every
metric use it.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .precision import accumulation_dtype

DEFAULT_BETA = 0.5  # the seed's KL weight


def per_image(x_hat, x, mu, logvar):
    """(recon, kl), each (N,): the squared error summed over pixels and the KL from N(0, I), per image."""
    acc = accumulation_dtype(x_hat.dtype)  # bfloat16 activations: the sums still run in float32
    diff = x_hat.astype(acc) - x.astype(acc)
    mu, logvar = mu.astype(acc), logvar.astype(acc)
    recon = jnp.sum(diff * diff, axis=tuple(range(1, diff.ndim)))
    kl = -0.5 * jnp.sum(1 + logvar - mu * mu - jnp.exp(logvar), axis=1)
    return recon, kl


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
        recon, kl = per_image(x_hat, x, mu, logvar)
        recon, kl = recon.mean(), kl.mean()
        acc = accumulation_dtype(x_hat.dtype)
        cache = ELBOCache(x_hat.astype(acc) - x.astype(acc), mu.astype(acc), logvar.astype(acc), x_hat.dtype)
        return {"loss": recon + self.beta * kl, "recon": recon, "kl": kl}, cache

    def backward(self, cache, dloss=1.0):
        """Gradients of the loss in x̂, μ and log σ², in the dtype x̂ came in."""
        n = cache.diff.shape[0]
        scale = dloss / n
        dx_hat = 2 * scale * cache.diff  # ∂recon/∂x̂ = 2(x̂ − x)/N
        dmu = self.beta * scale * cache.mu  # ∂(β·kl)/∂μ = β·μ/N
        dlogvar = self.beta * scale * 0.5 * (jnp.exp(cache.logvar) - 1)  # ∂(β·kl)/∂logσ² = β·½(σ² − 1)/N
        return dx_hat.astype(cache.dtype), dmu.astype(cache.dtype), dlogvar.astype(cache.dtype)
