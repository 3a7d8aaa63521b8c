"""Image-quality and latent-usage metrics for the beta-VAE.

Image metrics (JAX, jitted, per image)
--------------------------------------
All image functions take two float batches ``a`` and ``b`` of shape
``(N, C, H, W)`` (channels first, ``C = 3`` for RGB) with values in
``[0, 1]`` and return a ``(N,)`` array with one value per image pair.

* :func:`ssim` -- the structural similarity index of

      Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli (2004).
      "Image quality assessment: from error visibility to structural
      similarity." IEEE Trans. Image Processing 13(4), 600-612.

  with the paper's settings: an 11x11 Gaussian window of standard deviation
  1.5, K1 = 0.01, K2 = 0.03, data range 1, population (biased) local
  statistics, and the SSIM map averaged over its valid region and over the
  channels.  This reproduces ``skimage.metrics.structural_similarity(x, y,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=1.0, channel_axis=...)``: scikit-image filters the whole image
  with the Gaussian truncated at 3.5 sigma (radius 5, 11 taps) and then
  crops ``(11 - 1) // 2 = 5`` pixels at every edge before averaging, so the
  retained pixels are exactly those whose window lies inside the image and
  the border mode of the filter never matters.  Here the same quantity is
  computed directly with a "valid" separable filter (two matrix products).

* :func:`ssim_global` -- single-window SSIM over the whole image (not the
  standard SSIM; see its docstring).

* :func:`psnr` -- peak signal-to-noise ratio for data range 1, capped at
  :data:`PSNR_MAX_DB`.

Latent statistics (NumPy)
-------------------------
* :func:`active_units` -- the active-unit count of

      Y. Burda, R. Grosse, R. Salakhutdinov (2016). "Importance Weighted
      Autoencoders." ICLR 2016.

  A latent dimension ``u`` is active when ``Cov_x(E_{q(u|x)}[u]) > 0.01``,
  i.e. when the variance across the data set of its posterior mean exceeds
  the threshold.
* :func:`mean_kl_per_dimension` -- data-averaged KL(q(z_j|x) || N(0, 1)) of each
  latent dimension for a diagonal Gaussian posterior.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from model.elbo import kl_per_dimension

__all__ = [
    "SSIM_WIN_SIZE",
    "SSIM_SIGMA",
    "SSIM_K1",
    "SSIM_K2",
    "PSNR_MAX_DB",
    "PSNR_MSE_FLOOR",
    "gaussian_kernel_1d",
    "ssim",
    "ssim_global",
    "psnr",
    "active_units",
    "mean_kl_per_dimension",
    "ACTIVE_THRESHOLD",
]

ACTIVE_THRESHOLD = 0.01
"""A latent unit is active when the variance of its posterior mean exceeds this (Burda et al. 2016)."""
SSIM_WIN_SIZE = 11
"""Side of the Gaussian SSIM window (Wang et al. 2004)."""
SSIM_SIGMA = 1.5
"""Standard deviation of the Gaussian SSIM window, in pixels."""
SSIM_K1 = 0.01
SSIM_K2 = 0.03
_DATA_RANGE = 1.0
_C1 = (SSIM_K1 * _DATA_RANGE) ** 2
_C2 = (SSIM_K2 * _DATA_RANGE) ** 2

PSNR_MSE_FLOOR = 1e-10
"""The MSE is clamped from below at this value before taking the log."""
PSNR_MAX_DB = 100.0
"""Largest PSNR reported: ``10 * log10(1 / PSNR_MSE_FLOOR)`` = 100 dB."""

_HIGHEST = jax.lax.Precision.HIGHEST


def gaussian_kernel_1d(win_size: int = SSIM_WIN_SIZE, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian taps ``exp(-x^2 / (2 sigma^2))``, ``x = -r..r``.

    ``win_size = 2 r + 1`` taps, summing to one (float64).  With the defaults
    this is the kernel scipy/scikit-image use for ``sigma=1.5, truncate=3.5``.
    """
    if win_size < 1 or win_size % 2 != 1:
        raise ValueError(f"win_size must be a positive odd integer, got {win_size}")
    r = (win_size - 1) // 2
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def _valid_filter_matrix(n: int, taps: np.ndarray) -> np.ndarray:
    """``(n - k + 1, n)`` matrix M with ``(M @ v)[i] = sum_t taps[t] v[i + t]``."""
    k = taps.shape[0]
    m = np.zeros((n - k + 1, n), dtype=np.float64)
    for i in range(n - k + 1):
        m[i, i : i + k] = taps
    return m


def _check_pair(a, b, name: str, min_side: int = 1) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name}: shapes differ: {a.shape} vs {b.shape}")
    if a.ndim != 4:
        raise ValueError(f"{name}: expected (N, C, H, W) batches, got shape {a.shape}")
    for x in (a, b):
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(
                f"{name}: expected float images in [0, 1], got dtype {x.dtype}; "
                "convert uint8 images with x / 255.0 first"
            )
    if min(a.shape[-2:]) < min_side:
        raise ValueError(
            f"{name}: images of size {a.shape[-2:]} are smaller than the "
            f"{min_side}x{min_side} window"
        )


@jax.jit
def ssim(a: jax.Array, b: jax.Array) -> jax.Array:
    """Mean SSIM (Wang et al. 2004) of each image pair.

    Args:
      a, b: float arrays ``(N, C, H, W)`` with values in ``[0, 1]``;
        ``H, W >= 11``.

    Returns:
      ``(N,)`` float32: for each pair, the SSIM map (11x11 Gaussian window,
      sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1, population local
      statistics) averaged over its valid ``(H - 10) x (W - 10)`` region and
      over the ``C`` channels.  Equals scikit-image's
      ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
      use_sample_covariance=False, data_range=1.0, channel_axis=...)``
      up to float32 rounding (about 1e-6).
    """
    _check_pair(a, b, "ssim", SSIM_WIN_SIZE)
    a = a.astype(jnp.float32)
    b = b.astype(jnp.float32)
    h, w = a.shape[-2:]
    taps = gaussian_kernel_1d()
    mh = jnp.asarray(_valid_filter_matrix(h, taps), jnp.float32)  # (H', H)
    mwt = jnp.asarray(_valid_filter_matrix(w, taps).T, jnp.float32)  # (W, W')

    # Local statistics are shift invariant except for the means, so work on
    # images centred by their per-channel means: this keeps the differences
    # E[x^2] - E[x]^2 well conditioned in float32.
    ca = a.mean(axis=(-2, -1), keepdims=True)
    cb = b.mean(axis=(-2, -1), keepdims=True)
    x = a - ca
    y = b - cb
    stack = jnp.stack([x, y, x * x, y * y, x * y])  # (5, N, C, H, W)
    filt = jnp.matmul(stack, mwt, precision=_HIGHEST)  # (5, N, C, H, W')
    filt = jnp.matmul(mh, filt, precision=_HIGHEST)  # (5, N, C, H', W')
    mx, my, exx, eyy, exy = filt
    vx = exx - mx * mx
    vy = eyy - my * my
    vxy = exy - mx * my
    ux = mx + ca
    uy = my + cb
    num = (2.0 * ux * uy + _C1) * (2.0 * vxy + _C2)
    den = (ux * ux + uy * uy + _C1) * (vx + vy + _C2)
    return jnp.mean(num / den, axis=(1, 2, 3))


@jax.jit
def ssim_global(a: jax.Array, b: jax.Array) -> jax.Array:
    """Single-window ("global") SSIM of each image pair -- NOT the standard SSIM.

    For every channel one mean, one (population) variance and one covariance
    are taken over the whole ``H x W`` image, and the SSIM formula is applied
    once with the usual constants (K1 = 0.01, K2 = 0.03, data range 1):

        ((2 mu_a mu_b + C1) (2 cov_ab + C2)) /
        ((mu_a^2 + mu_b^2 + C1) (var_a + var_b + C2)),

    then averaged over the channels.  This is the definition behind a
    published results table's reconstruction figure (SSIM 0.9364); it is kept
    only so that figure can be reproduced.  It ignores local structure and
    is not comparable with :func:`ssim` (Wang et al. 2004), which averages
    the same formula over 11x11 Gaussian windows and is what "SSIM" means in
    the literature.

    Args:
      a, b: float arrays ``(N, C, H, W)`` with values in ``[0, 1]``.

    Returns:
      ``(N,)`` float32.
    """
    _check_pair(a, b, "ssim_global")
    a = a.astype(jnp.float32)
    b = b.astype(jnp.float32)
    ua = a.mean(axis=(-2, -1))
    ub = b.mean(axis=(-2, -1))
    da = a - ua[..., None, None]
    db = b - ub[..., None, None]
    va = jnp.mean(da * da, axis=(-2, -1))
    vb = jnp.mean(db * db, axis=(-2, -1))
    cov = jnp.mean(da * db, axis=(-2, -1))
    num = (2.0 * ua * ub + _C1) * (2.0 * cov + _C2)
    den = (ua * ua + ub * ub + _C1) * (va + vb + _C2)
    return jnp.mean(num / den, axis=1)


@jax.jit
def psnr(a: jax.Array, b: jax.Array) -> jax.Array:
    """Peak signal-to-noise ratio of each image pair, data range 1.

    ``10 * log10(1 / MSE)`` with the MSE taken over all pixels and channels
    of the pair.  The MSE is clamped from below at :data:`PSNR_MSE_FLOOR`
    (1e-10), so the value is capped at :data:`PSNR_MAX_DB` (100 dB): identical
    images give 100 dB instead of ``inf`` and a mean over a data set stays
    finite.  Below the cap it equals
    ``skimage.metrics.peak_signal_noise_ratio(a, b, data_range=1.0)``.

    Args:
      a, b: float arrays ``(N, C, H, W)`` with values in ``[0, 1]``.

    Returns:
      ``(N,)`` float32, in dB.
    """
    _check_pair(a, b, "psnr")
    d = a.astype(jnp.float32) - b.astype(jnp.float32)
    mse = jnp.mean(d * d, axis=(1, 2, 3))
    mse = jnp.maximum(mse, PSNR_MSE_FLOOR)
    return -10.0 * jnp.log10(mse)


def active_units(mu, threshold: float = ACTIVE_THRESHOLD) -> tuple[int, np.ndarray]:
    """Number of active latent units (Burda et al. 2016).

    Unit ``j`` is active when ``Var_x(E[z_j | x]) > threshold``: the variance
    across the data set of the posterior mean ``mu[:, j]`` (population
    variance, divisor ``N``).

    Args:
      mu: ``(N, D)`` posterior means of the encoder over a data set.
      threshold: activity threshold (0.01 in the paper).

    Returns:
      ``(count, variances)``: ``count`` an ``int``, ``variances`` the
      ``(D,)`` float64 per-dimension variances.
    """
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 2:
        raise ValueError(f"expected mu of shape (N, D), got {mu.shape}")
    variances = mu.var(axis=0)
    return int(np.sum(variances > threshold)), variances


def mean_kl_per_dimension(mu, logvar) -> np.ndarray:
    """Data-averaged KL divergence of each latent dimension from N(0, 1).

    The per-image, per-dimension KL is ``model.elbo.kl_per_dimension``; this averages it over
    the ``N`` images, in float64. The values sum to the average KL term of the ELBO.

    Args:
      mu, logvar: ``(N, D)`` posterior means and log-variances.

    Returns:
      ``(D,)`` float64, in nats.
    """
    mu = np.asarray(mu, dtype=np.float64)
    logvar = np.asarray(logvar, dtype=np.float64)
    if mu.shape != logvar.shape or mu.ndim != 2:
        raise ValueError(f"expected two (N, D) arrays, got {mu.shape} and {logvar.shape}")
    return kl_per_dimension(mu, logvar).mean(axis=0)
