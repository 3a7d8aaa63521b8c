"""Element-wise activations: forward(x) -> (y, cache), backward(cache, dy) -> dx."""
import jax.numpy as jnp


class ReLU:
    """y = max(x, 0). The cache is the output: y > 0 exactly where x > 0."""

    @staticmethod
    def forward(x):
        y = jnp.maximum(x, 0)
        return y, y

    @staticmethod
    def backward(y, dy):
        return jnp.where(y > 0, dy, 0)  # dx = dy · 1[x > 0]


class Sigmoid:
    """y = 1 / (1 + e^(−x)), evaluated without overflow for large |x|."""

    @staticmethod
    def forward(x):
        e = jnp.exp(-jnp.abs(x))  # in (0, 1]: never overflows
        y = jnp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return y, y

    @staticmethod
    def backward(y, dy):
        return dy * y * (1 - y)  # dx = dy · σ(x)(1 − σ(x))
