"""Fully connected layer with a hand-written gradient (PyTorch Linear layout)."""
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .init import glorot_uniform
from .precision import accumulation_dtype


class DenseCache(NamedTuple):
    x: jax.Array  # the layer's input, (N, I)


class Dense:
    """y = x·Wᵀ + b.  x: (N,I) -> y: (N,O); params W (O,I), b (O,)."""

    def __init__(self, in_features, out_features):
        self.in_features, self.out_features = in_features, out_features

    def shapes(self):
        return {"weight": (self.out_features, self.in_features), "bias": (self.out_features,)}

    def init(self, key, dtype=jnp.float32):
        return {"weight": glorot_uniform(key, self.shapes()["weight"], self.in_features, self.out_features, dtype),
                "bias": jnp.zeros(self.shapes()["bias"], dtype)}

    def forward(self, params, x):
        return x @ params["weight"].T + params["bias"], DenseCache(x)

    def backward(self, params, cache, dy):
        dx = dy @ params["weight"]  # dx = dy·W          (N,I)
        dw = dy.T @ cache.x  # dW = dyᵀ·x                (O,I)
        db = dy.sum(axis=0, dtype=accumulation_dtype(dy.dtype))  # db = Σ_n dy               (O,)
        return dx, {"weight": dw, "bias": db}
