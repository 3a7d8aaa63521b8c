"""Gradient clipping: by global L2 norm (default) or element-wise to [−c, c]."""
import jax.numpy as jnp


def global_norm(grads):
    """‖g‖₂ over every parameter's gradient together."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in grads.values()))


def clip_by_global_norm(grads, max_norm, norm=None):
    """Scale all gradients by min(1, max_norm/‖g‖): below the threshold nothing changes."""
    norm = global_norm(grads) if norm is None else norm
    scale = jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-12))
    return {name: g * scale.astype(g.dtype) for name, g in grads.items()}


def clip_by_value(grads, limit):
    """Clamp every element to [−limit, limit] (the seed's original scheme, limit 1)."""
    return {name: jnp.clip(g, -limit, limit) for name, g in grads.items()}
