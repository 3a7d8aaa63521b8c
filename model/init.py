"""Glorot/Xavier initialisation (Glorot & Bengio, 2010)."""
import jax
import jax.numpy as jnp


def glorot_uniform(key, shape, fan_in, fan_out, dtype=jnp.float32):
    """Uniform on [−a, a] with a = √(6 / (fan_in + fan_out)), so Var = 2 / (fan_in + fan_out)."""
    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    return jax.random.uniform(key, shape, dtype, -limit, limit)
