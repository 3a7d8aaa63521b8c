"""Tests of image_metrics against scikit-image and direct NumPy computations."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from analysis import image_metrics as im

# float32 against scikit-image's float64: observed errors are ~1e-7.  Kept well
# below the shifts caused by a wrong window (sigma 1.6, 9 taps, box filter:
# >= 3e-4) or by sample instead of population covariance (~2e-4).
SSIM_ATOL = 2e-5


def _sk_ssim(a, b):
    """scikit-image SSIM with the Wang et al. (2004) settings, per image."""
    return np.array(
        [
            structural_similarity(
                x,
                y,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=1.0,
                channel_axis=0,
            )
            for x, y in zip(a.astype(np.float64), b.astype(np.float64))
        ]
    )


def _random_pair(rng, shape, noise):
    a = rng.random(shape)
    b = np.clip(a + noise * rng.standard_normal(shape), 0.0, 1.0)
    return a.astype(np.float32), b.astype(np.float32)


def _smooth_images(rng, shape, sigma):
    """Random images smoothed per channel, rescaled to [0, 1]."""
    x = gaussian_filter(rng.random(shape), sigma=(0, 0, sigma, sigma))
    x = (x - x.min()) / (x.max() - x.min())
    return x


@pytest.mark.parametrize("hw", [(64, 64), (32, 48), (23, 11), (11, 11)])
def test_ssim_matches_skimage_noisy(hw):
    rng = np.random.default_rng(0)
    for noise in (0.02, 0.2):
        a, b = _random_pair(rng, (3, 3) + hw, noise)
        np.testing.assert_allclose(np.asarray(im.ssim(a, b)), _sk_ssim(a, b), atol=SSIM_ATOL, rtol=0)


@pytest.mark.parametrize("hw", [(64, 64), (40, 57)])
def test_ssim_matches_skimage_independent_images(hw):
    rng = np.random.default_rng(1)
    a = rng.random((4, 3) + hw).astype(np.float32)
    b = rng.random((4, 3) + hw).astype(np.float32)
    ref = _sk_ssim(a, b)
    assert np.all(np.abs(ref) < 0.1)  # unrelated images: SSIM near 0
    np.testing.assert_allclose(np.asarray(im.ssim(a, b)), ref, atol=SSIM_ATOL, rtol=0)


def test_ssim_matches_skimage_blurred():
    """Reconstruction-like pairs: a smooth image against a blurred copy."""
    rng = np.random.default_rng(2)
    a = _smooth_images(rng, (4, 3, 64, 64), 2.0)
    b = gaussian_filter(a, sigma=(0, 0, 1.5, 1.5))
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    ref = _sk_ssim(a32, b32)
    assert np.all((ref > 0.3) & (ref < 0.999))
    np.testing.assert_allclose(np.asarray(im.ssim(a32, b32)), ref, atol=SSIM_ATOL, rtol=0)
    # Dark, low-contrast images stress the float32 variance computation.
    np.testing.assert_allclose(
        np.asarray(im.ssim(0.05 * a32, 0.05 * b32)), _sk_ssim(0.05 * a32, 0.05 * b32), atol=SSIM_ATOL, rtol=0
    )


def test_ssim_of_identical_images_is_one():
    rng = np.random.default_rng(3)
    x = rng.random((5, 3, 64, 64)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(im.ssim(x, x)), np.ones(5), atol=1e-5)


def test_gaussian_kernel_matches_scipy():
    """The 11 taps equal scipy's Gaussian filter (sigma 1.5, truncate 3.5) impulse response."""
    impulse = np.zeros(31)
    impulse[15] = 1.0
    response = gaussian_filter(impulse, sigma=1.5, truncate=3.5, mode="constant")
    assert np.count_nonzero(response) == 11
    np.testing.assert_allclose(im.gaussian_kernel_1d(), response[10:21], rtol=1e-12, atol=0)


def test_ssim_rejects_bad_inputs():
    x = np.zeros((1, 3, 10, 64), np.float32)
    with pytest.raises(ValueError):
        im.ssim(x, x)
    u = np.zeros((1, 3, 64, 64), np.uint8)
    with pytest.raises(TypeError):
        im.ssim(u, u)
    with pytest.raises(ValueError):
        im.psnr(np.zeros((1, 3, 8, 8), np.float32), np.zeros((1, 3, 8, 9), np.float32))


def _global_ssim_reference(a, b):
    """Float64 loop implementation of the single-window SSIM."""
    c1, c2 = 0.01**2, 0.03**2
    out = []
    for x, y in zip(a.astype(np.float64), b.astype(np.float64)):
        vals = []
        for xc, yc in zip(x, y):
            mx, my = xc.mean(), yc.mean()
            vx = ((xc - mx) ** 2).mean()
            vy = ((yc - my) ** 2).mean()
            cxy = ((xc - mx) * (yc - my)).mean()
            vals.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
        out.append(np.mean(vals))
    return np.array(out)


def test_ssim_global_matches_reference():
    rng = np.random.default_rng(4)
    a = _smooth_images(rng, (6, 3, 64, 64), 2.0)
    b = gaussian_filter(a, sigma=(0, 0, 1.5, 1.5))
    a, b = a.astype(np.float32), b.astype(np.float32)
    ref = _global_ssim_reference(a, b)
    got = np.asarray(im.ssim_global(a, b))
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
    # It is a different quantity from the windowed SSIM.
    assert np.all(got - _sk_ssim(a, b) > 0.03)
    np.testing.assert_allclose(np.asarray(im.ssim_global(a, a)), np.ones(6), atol=1e-5)
    c, d = _random_pair(rng, (3, 3, 20, 30), 0.1)
    np.testing.assert_allclose(
        np.asarray(im.ssim_global(c, d)), _global_ssim_reference(c, d), atol=1e-5, rtol=0
    )


def test_psnr_matches_skimage():
    rng = np.random.default_rng(5)
    for noise in (0.01, 0.1, 0.3):
        a, b = _random_pair(rng, (4, 3, 64, 48), noise)
        ref = [
            peak_signal_noise_ratio(x, y, data_range=1.0)
            for x, y in zip(a.astype(np.float64), b.astype(np.float64))
        ]
        np.testing.assert_allclose(np.asarray(im.psnr(a, b)), ref, atol=1e-3, rtol=0)


def test_psnr_of_identical_images_is_capped():
    rng = np.random.default_rng(6)
    a, b = _random_pair(rng, (3, 3, 16, 16), 0.1)
    b[1] = a[1]
    got = np.asarray(im.psnr(a, b))
    assert np.all(np.isfinite(got)) and np.isfinite(got.mean())
    assert got[1] == pytest.approx(im.PSNR_MAX_DB)
    assert im.PSNR_MAX_DB == pytest.approx(-10 * np.log10(im.PSNR_MSE_FLOOR))
    expected_other = peak_signal_noise_ratio(a[0].astype(np.float64), b[0].astype(np.float64), data_range=1.0)
    assert got[0] == pytest.approx(expected_other, abs=1e-3)


def test_active_units_counts_informative_dims():
    rng = np.random.default_rng(9)
    n, d = 2000, 10
    mu = 1e-3 * rng.standard_normal((n, d))  # inactive: variance ~1e-6
    mu[:, [1, 4, 7]] = rng.standard_normal((n, 3))  # informative
    count, variances = im.active_units(mu)
    assert count == 3
    ref = ((mu - mu.mean(axis=0)) ** 2).sum(axis=0) / n
    np.testing.assert_allclose(variances, ref, rtol=1e-10)
    assert set(np.flatnonzero(variances > 0.01)) == {1, 4, 7}


def test_active_units_threshold_on_known_variances():
    # Columns alternate between +s and -s: population variance exactly s^2.
    signs = np.tile([1.0, -1.0], 50)[:, None]
    s = np.array([0.05, 0.09, 0.2, 0.0])  # variances 0.0025, 0.0081, 0.04, 0
    count, variances = im.active_units(signs * s)
    np.testing.assert_allclose(variances, s**2, atol=1e-15)
    assert count == 1  # only 0.04 > 0.01
    assert im.active_units(signs * s, threshold=0.001)[0] == 3


def test_kl_per_dimension_known_values():
    n = 6
    mu = np.zeros((n, 3))
    logvar = np.zeros((n, 3))
    mu[:, 1] = 1.0  # KL = 0.5 * 1
    logvar[:, 2] = np.log(2.0)  # KL = 0.5 * (2 - 1 - log 2)
    np.testing.assert_allclose(
        im.mean_kl_per_dimension(mu, logvar), [0.0, 0.5, 0.5 * (1.0 - np.log(2.0))], atol=1e-12
    )


def test_kl_per_dimension_matches_gaussian_kl_loop():
    rng = np.random.default_rng(10)
    mu = rng.standard_normal((50, 4))
    logvar = rng.uniform(-3, 1, size=(50, 4))
    ref = np.zeros(4)
    for i in range(50):
        for j in range(4):
            # KL(N(m, s^2) || N(0, 1)) = log(1/s) + (s^2 + m^2) / 2 - 1/2
            s = np.exp(0.5 * logvar[i, j])
            ref[j] += (np.log(1.0 / s) + 0.5 * (s * s + mu[i, j] ** 2) - 0.5) / 50
    np.testing.assert_allclose(im.mean_kl_per_dimension(mu, logvar), ref, rtol=1e-10)
