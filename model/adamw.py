"""AdamW (Loshchilov & Hutter, 2019): Adam (Kingma & Ba, 2015) with decoupled weight decay.

Pure functions over pytrees, as in ``jax.example_libraries.optimizers``:
``init(params) -> state`` and ``update(params, grads, state, hp) -> (params, state)``.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp


class AdamWState(NamedTuple):
    step: jax.Array  # int32 scalar: updates taken so far
    m: dict          # first-moment estimates, shaped like params
    v: dict          # second-moment estimates, shaped like params


class AdamWHyperparams(NamedTuple):
    lr: float = 1e-3
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.01


def cosine_factor(step, decay_steps):
    """The learning rate's factor at ``step`` (updates taken so far) of a cosine decay to 0 over
    ``decay_steps``: ½(1 + cos(π·min(step/T, 1))), 1 at the first update; an infinite T keeps it 1."""
    progress = jnp.minimum(step / decay_steps, 1.0)
    return 0.5 * (1.0 + jnp.cos(jnp.pi * progress))


def decay_mask(params):
    """Decay weights, not biases (PyTorch's AdamW decays both unless told otherwise)."""
    return {name: not name.endswith(".bias") for name in params}


def init(params):
    zeros = lambda: {name: jnp.zeros_like(p) for name, p in params.items()}
    return AdamWState(jnp.zeros((), jnp.int32), zeros(), zeros())  # distinct buffers: both are donated


def update(params, grads, state, hp, mask=None):
    """One AdamW step. ``mask[name]`` says whether that parameter is weight-decayed."""
    mask = decay_mask(params) if mask is None else mask
    t = state.step + 1
    tf = t.astype(next(iter(params.values())).dtype)  # float32, or float64 in the x64 tests
    bias1 = 1 - hp.b1 ** tf  # 1 − β₁ᵗ
    bias2 = 1 - hp.b2 ** tf  # 1 − β₂ᵗ
    new_params, new_m, new_v = {}, {}, {}
    for name, p in params.items():
        g = grads[name]
        m = hp.b1 * state.m[name] + (1 - hp.b1) * g  # m ← β₁m + (1−β₁)g
        v = hp.b2 * state.v[name] + (1 - hp.b2) * g * g  # v ← β₂v + (1−β₂)g²
        m_hat = m / bias1  # m̂ = m / (1−β₁ᵗ)
        v_hat = v / bias2  # v̂ = v / (1−β₂ᵗ)
        step = m_hat / (jnp.sqrt(v_hat) + hp.eps)
        if mask[name]:
            step = step + hp.weight_decay * p  # decoupled: λθ is added to the step, not to g
        new_params[name] = (p - hp.lr * step).astype(p.dtype)  # θ ← θ − η(m̂/(√v̂+ε) + λθ)
        new_m[name], new_v[name] = m, v
    return new_params, AdamWState(t, new_m, new_v)
