"""Paths through the latent space: interpolation between two codes and traversals of one dimension."""
from __future__ import annotations

import numpy as np

MODES = ("linear", "slerp")
PARALLEL_EPS = 1e-6  # below this sin(angle) slerp uses the straight line
TRAVERSAL_RANGE = 3.0


def lerp(a, b, t) -> np.ndarray:
    """(len(t), D): (1 - t) a + t b; exactly a at t = 0 and b at t = 1."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    t = np.asarray(t, np.float64)[:, None]
    out = (1.0 - t) * a + t * b
    out[t[:, 0] == 0.0] = a
    out[t[:, 0] == 1.0] = b
    return out


def slerp(a, b, t, eps: float = PARALLEL_EPS) -> np.ndarray:
    """(len(t), D): spherical interpolation from a (t = 0) to b (t = 1).

    sin((1 - t) Ω) / sin Ω · a + sin(t Ω) / sin Ω · b, with Ω the angle between a and b.
    When sin Ω < ``eps`` (nearly parallel or opposite vectors, or a zero vector) the
    straight line is used instead, so the result is always finite. Endpoints are exact.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    t = np.asarray(t, np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0.0 or nb == 0.0 or not (np.isfinite(na) and np.isfinite(nb)):
        return lerp(a, b, t)
    cos = float(np.clip(np.dot(a / na, b / nb), -1.0, 1.0))
    omega = float(np.arccos(cos))
    sin = float(np.sin(omega))
    if sin < eps:
        return lerp(a, b, t)
    wa = np.sin((1.0 - t) * omega) / sin
    wb = np.sin(t * omega) / sin
    out = wa[:, None] * a + wb[:, None] * b
    out[t == 0.0] = a
    out[t == 1.0] = b
    return out


def interpolation_times(steps: int) -> np.ndarray:
    """0, the ``steps`` interior times k / (steps + 1), and 1."""
    return np.linspace(0.0, 1.0, steps + 2)


def interpolate_latents(a, b, steps: int, mode: str = "linear") -> np.ndarray:
    """(steps + 2, D) codes from a to b, both ends included."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    return (slerp if mode == "slerp" else lerp)(a, b, interpolation_times(steps))


def rank_dimensions(kl) -> np.ndarray:
    """Latent dimensions ordered by KL, highest first (ties: lower index first)."""
    kl = np.asarray(kl, np.float64)
    return np.argsort(-kl, kind="stable")


def traversal_values(steps: int, extent: float = TRAVERSAL_RANGE) -> np.ndarray:
    return np.linspace(-extent, extent, steps) if steps > 1 else np.zeros(1)


def format_value(v: float) -> str:
    """-2.25 -> '-2.25', 3.0 -> '+3', 0.0 -> '0'."""
    text = f"{v:+.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("+0", "-0") else text


def traversal_latents(mu, dims, values, *, relative: bool = False) -> np.ndarray:
    """(len(dims), len(values), D): ``mu`` with dimension ``dims[i]`` set to (or shifted by) each value."""
    mu = np.asarray(mu, np.float32)
    values = np.asarray(values, np.float32)
    z = np.broadcast_to(mu, (len(dims), len(values), mu.shape[-1])).copy()
    for i, d in enumerate(dims):
        z[i, :, d] = mu[d] + values if relative else values
    return z
