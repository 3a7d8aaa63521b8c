"""Glorot/Xavier initialisation (Glorot & Bengio, 2010).

The numbers are drawn on the host with NumPy, seeded by the JAX key's data: deterministic for a
given key, and milliseconds instead of the seconds XLA:CPU spends compiling a large threefry draw.
"""
import jax
import jax.numpy as jnp
import numpy as np


def host_rng(key):
    """A NumPy generator seeded by the bits of a JAX PRNG key."""
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    return np.random.default_rng(np.asarray(data, np.uint32).ravel().tolist())


def glorot_uniform(key, shape, fan_in, fan_out, dtype=jnp.float32):
    """Uniform on [−a, a] with a = √(6 / (fan_in + fan_out)), so Var = 2 / (fan_in + fan_out)."""
    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    return jnp.asarray(host_rng(key).uniform(-limit, limit, shape), dtype)
