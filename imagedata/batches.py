"""Batches on the device: the uint8 images live there once, each step gathers its batch there.

``iterate_batches`` draws one permutation per epoch on the device and gathers each batch with a
jitted ``take``: no host round trip, and the same key gives the same batches on any backend.
"""
from __future__ import annotations

import functools
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from system.errors import UserError

def to_device(images: np.ndarray, sharding=None) -> "jax.Array":
    """Copy uint8 images to the default device (or to ``sharding``), still uint8."""
    a = np.asarray(images)
    if a.dtype != np.uint8 or a.ndim != 4:
        raise UserError(f"to_device expects uint8 images (N, 3, H, W), got {a.dtype} {a.shape}.")
    return jax.device_put(a) if sharding is None else jax.device_put(a, sharding)


def num_batches(num_images: int, batch_size: int) -> int:
    """Full batches per epoch (the remainder is dropped)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return int(num_images) // int(batch_size)


@functools.lru_cache(maxsize=None)
def _gather_fn():
    @functools.partial(jax.jit, static_argnames="batch_size")
    def gather(images, perm, i, *, batch_size):
        idx = jax.lax.dynamic_slice_in_dim(perm, i * batch_size, batch_size)
        return jnp.take(images, idx, axis=0, mode="clip")

    return gather


def iterate_batches(images, batch_size: int, key) -> Iterator["jax.Array"]:
    """One epoch of shuffled batches (B, 3, H, W) on the device; the remainder is dropped.

    The order is ``jax.random.permutation(key, N)``, computed on the device,
    so the same key gives the same batches. They stay uint8: the step converts them.
    """
    batch_size = int(batch_size)
    if batch_size < 1:
        raise UserError(f"the batch size must be positive, not {batch_size}.")
    n = int(images.shape[0])
    if n < batch_size:
        raise UserError(f"the data has {n} images, fewer than one batch of {batch_size}; use a smaller batch size or more data.")
    if not isinstance(images, jax.Array):
        images = jnp.asarray(images)
    perm = jax.random.permutation(key, n)
    gather = _gather_fn()
    steps = n // batch_size

    def epoch():
        for i in range(steps):
            yield gather(images, perm, i, batch_size=batch_size)

    return epoch()
