"""Data parallelism on JAX's own sharding: one mesh over all devices, batches split along axis 0.

Parameters and optimiser state are replicated; the same compiled step runs on the sharded batch
and XLA inserts the gradient all-reduce. On one device nothing is sharded.
"""
import jax
import numpy as np

from system.errors import UserError


def device_layout(batch_size):
    """(sharding of a batch, sharding of replicated arrays), or (None, None) on one device."""
    devices = jax.devices()
    if len(devices) == 1:
        return None, None
    if batch_size % len(devices):
        raise UserError(f"The batch size {batch_size} does not divide across {len(devices)} devices; "
                        f"pick a multiple of {len(devices)}.")
    mesh = jax.sharding.Mesh(np.array(devices), ("data",))
    spec = jax.sharding.PartitionSpec
    return jax.sharding.NamedSharding(mesh, spec("data")), jax.sharding.NamedSharding(mesh, spec())


def place_batch(batch, batch_sharding):
    """``batch`` laid out as ``batch_sharding`` says (each host feeds its own slice of the global batch)."""
    if batch_sharding is None:
        return batch
    if jax.process_count() > 1:
        per_host = batch.shape[0] // jax.process_count()
        local = batch[jax.process_index() * per_host:(jax.process_index() + 1) * per_host]
        return jax.make_array_from_process_local_data(batch_sharding, np.asarray(local))
    return jax.device_put(batch, batch_sharding)
