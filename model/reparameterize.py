"""The reparameterisation trick (Kingma & Welling, 2014): z = μ + σ ⊙ ε, σ = exp(½ log σ²)."""
from typing import NamedTuple

import jax
import jax.numpy as jnp


class ReparameterizeCache(NamedTuple):
    eps: jax.Array    # (N, D) the standard-normal noise
    sigma: jax.Array  # (N, D)


class Reparameterize:
    @staticmethod
    def forward(mu, logvar, eps):
        """mu, logvar, eps: (N, D) -> z: (N, D). The noise is an input, so the map is deterministic."""
        sigma = jnp.exp(0.5 * logvar)
        return mu + sigma * eps, ReparameterizeCache(eps, sigma)

    @staticmethod
    def backward(cache, dz):
        dmu = dz  # ∂z/∂μ = 1
        dlogvar = dz * cache.eps * cache.sigma * 0.5  # ∂z/∂logσ² = ε · ½σ
        return dmu, dlogvar
