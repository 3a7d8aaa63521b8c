"""Tests of analysis/disentanglement.py on synthetic codes with known answers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from analysis import disentanglement as dm
from imagedata import factors


def uniform_sampler(sizes):
    """(rng, n) -> (n, K) factor vectors, each factor uniform: the distribution of a full factor grid."""
    return lambda rng, n: factors.sample(sizes, rng, n)


SIZES = (3, 6, 40, 32, 32, 6)
SAMPLE = uniform_sampler(SIZES)
FAST = dict(num_train=800, num_test=400, pairs=16, examples_per_batch=50)


def _scaled(f):
    return f / (np.asarray(SIZES, dtype=np.float64) - 1.0)


def copy_code(seed=0, noise_dims=4):
    """Each of the first K latents is one factor scaled to [0, 1]; then noise dims."""
    rng = np.random.default_rng(seed)

    def fn(f):
        return np.concatenate([_scaled(f), 0.1 * rng.standard_normal((len(f), noise_dims))], axis=1)

    return fn


def random_code(seed=0, dims=10):
    """A code independent of the factors."""
    rng = np.random.default_rng(seed)
    return lambda f: rng.standard_normal((len(f), dims))


def entangled_code(f):
    """Factors 1 and 5 are mixed into z0 = v1 + v5, z1 = v1 - v5; the rest copied."""
    s = _scaled(f)
    return np.stack([s[:, 1] + s[:, 5], s[:, 1] - s[:, 5], s[:, 0], s[:, 2], s[:, 3], s[:, 4]], axis=1)


# ---------------------------------------------------------------------------
# beta-VAE metric
# ---------------------------------------------------------------------------


def test_beta_vae_score_copying_code_is_perfect():
    res = dm.beta_vae_score_from_codes(copy_code(), SAMPLE, SIZES, rng=np.random.default_rng(0), **FAST)
    assert res["train_accuracy"] > 0.98
    assert res["test_accuracy"] > 0.98


def test_beta_vae_score_random_code_is_near_chance():
    res = dm.beta_vae_score_from_codes(random_code(), SAMPLE, SIZES, rng=np.random.default_rng(1), **FAST)
    # chance is 1/6 ~ 0.167; allow for sampling noise of 400 test examples
    assert res["test_accuracy"] < 0.3
    assert abs(res["test_accuracy"] - 1.0 / len(SIZES)) < 0.1


def test_beta_vae_examples_structure():
    sizes = (1, 4, 5)  # factor 0 is constant and can never be the label
    sample = uniform_sampler(sizes)
    seen = []

    def code_fn(f):
        seen.append(f.copy())
        return f.astype(np.float64)

    feats, labels = dm.beta_vae_examples(
        code_fn, sample, sizes, 300, rng=np.random.default_rng(2), pairs=8, examples_per_batch=7
    )
    assert feats.shape == (300, 3) and labels.shape == (300,)
    assert set(np.unique(labels)) == {1, 2}
    # identity code: the fixed factor has zero difference, the other does not
    np.testing.assert_array_equal(feats[np.arange(300), labels], 0.0)
    other = 3 - labels
    assert np.all(feats[np.arange(300), other] > 0)
    # recompute z_diff for the first batch from the recorded factor vectors
    f = seen[0]
    m = 7
    f1, f2 = f[: m * 8], f[m * 8 :]
    ref = np.abs(f1 - f2).reshape(m, 8, 3).mean(axis=1)
    np.testing.assert_allclose(feats[:m], ref)
    for i in range(m):
        k = labels[i]
        np.testing.assert_array_equal(f1[i * 8 : (i + 1) * 8, k], f2[i * 8 : (i + 1) * 8, k])


def test_beta_vae_score_with_render_and_encode_matches_codes():
    """The image-level entry point renders, encodes and scores like the code-level one."""
    sizes = (3, 6, 8)
    sample = uniform_sampler(sizes)

    def render(f):
        img = np.zeros((len(f), 3, 64, 64), np.uint8)
        for c in range(3):
            img[:, c] = (f[:, c] * 30)[:, None, None]
        return img

    def encode(images):
        assert images.dtype == np.uint8 and images.shape[1:] == (3, 64, 64)
        return images[:, :, 0, 0].astype(np.float64) / 30.0

    kw = dict(num_train=200, num_test=100, pairs=8, examples_per_batch=25)
    a = dm.beta_vae_score(encode, sample, render, sizes, rng=np.random.default_rng(3), **kw)
    b = dm.beta_vae_score_from_codes(
        lambda f: f.astype(np.float64), sample, sizes, rng=np.random.default_rng(3), **kw
    )
    assert a == b
    assert a["test_accuracy"] > 0.95


def _jax_loss(w, b, x, y, l2):
    logp = jax.nn.log_softmax(x @ w + b, axis=1)
    return -jnp.mean(logp[jnp.arange(x.shape[0]), y]) + 0.5 * l2 * jnp.sum(w * w)


def test_softmax_regression_gradient_matches_autodiff_oracle():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((37, 5))
    y = rng.integers(0, 4, size=37)
    w = rng.standard_normal((5, 4))
    b = rng.standard_normal(4)
    loss, gw, gb = dm.softmax_regression_loss_and_grad(w, b, x, y, l2=0.3)
    with jax.enable_x64(True):  # scoped: float64 oracle without changing global state
        ref_loss = float(_jax_loss(w, b, x, y, 0.3))
        ref_gw, ref_gb = jax.grad(_jax_loss, argnums=(0, 1))(w, b, x, y, 0.3)
        ref_gw, ref_gb = np.asarray(ref_gw), np.asarray(ref_gb)
    assert ref_gw.dtype == np.float64
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(gw, ref_gw, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gb, ref_gb, rtol=1e-10, atol=1e-12)


def test_softmax_regression_gradient_matches_finite_differences():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((20, 3))
    y = rng.integers(0, 3, size=20)
    w = rng.standard_normal((3, 3))
    b = rng.standard_normal(3)
    _, gw, gb = dm.softmax_regression_loss_and_grad(w, b, x, y, l2=0.1)
    h = 1e-6
    for idx in np.ndindex(w.shape):
        wp, wm = w.copy(), w.copy()
        wp[idx] += h
        wm[idx] -= h
        fd = (dm.softmax_regression_loss_and_grad(wp, b, x, y, 0.1)[0] - dm.softmax_regression_loss_and_grad(wm, b, x, y, 0.1)[0]) / (2 * h)
        assert gw[idx] == pytest.approx(fd, abs=1e-7)
    for i in range(3):
        bp, bm = b.copy(), b.copy()
        bp[i] += h
        bm[i] -= h
        fd = (dm.softmax_regression_loss_and_grad(w, bp, x, y, 0.1)[0] - dm.softmax_regression_loss_and_grad(w, bm, x, y, 0.1)[0]) / (2 * h)
        assert gb[i] == pytest.approx(fd, abs=1e-7)


def test_fit_softmax_regression_reaches_optimum_and_recovers_model():
    rng = np.random.default_rng(6)
    n, d, c = 3000, 4, 3
    w_true = rng.standard_normal((d, c))
    x = rng.standard_normal((n, d))
    logits = x @ w_true
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = np.array([rng.choice(c, p=pi) for pi in p])
    w, b = dm.fit_softmax_regression(x, y, c, l2=1e-4, max_iter=3000)
    _, gw, gb = dm.softmax_regression_loss_and_grad(w, b, x, y, 1e-4)
    assert np.sqrt(np.sum(gw**2) + np.sum(gb**2)) < 1e-4  # stationary point of a convex loss
    # softmax weights are identified up to a per-feature shift across classes
    centred = w - w.mean(axis=1, keepdims=True)
    true_centred = w_true - w_true.mean(axis=1, keepdims=True)
    assert np.linalg.norm(centred - true_centred) < 0.15 * np.linalg.norm(true_centred)
    bayes = np.mean(np.argmax(logits, 1) == y)
    assert np.mean(dm.predict_softmax_regression(w, b, x) == y) > bayes - 0.02


# ---------------------------------------------------------------------------
# MIG
# ---------------------------------------------------------------------------


def test_discretize_matches_numpy_histogram():
    rng = np.random.default_rng(7)
    mu = rng.standard_normal((500, 3)) * [1.0, 5.0, 0.01]
    mu[:, 2] = 7.0  # constant column
    zb = dm.discretize(mu, num_bins=20)
    assert zb.min() >= 0 and zb.max() <= 19
    for j in range(2):
        counts, _ = np.histogram(mu[:, j], bins=20)
        np.testing.assert_array_equal(np.bincount(zb[:, j], minlength=20), counts)
    assert len(np.unique(zb[:, 2])) == 1


def test_discrete_mutual_info_known_values():
    a = np.repeat(np.arange(4), 25)
    assert dm.discrete_mutual_info(a, a) == pytest.approx(np.log(4))
    assert dm.discrete_entropy(a) == pytest.approx(np.log(4))
    # independent by construction: every (a, b) combination equally often
    ga, gb = np.meshgrid(np.arange(4), np.arange(5), indexing="ij")
    assert dm.discrete_mutual_info(ga.ravel(), gb.ravel()) == pytest.approx(0.0, abs=1e-12)
    # joint table [[3, 1], [1, 3]] / 8: I = sum p log(p / (1/4))
    x = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    y = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    ref = 2 * (3 / 8) * np.log((3 / 8) / 0.25) + 2 * (1 / 8) * np.log((1 / 8) / 0.25)
    assert dm.discrete_mutual_info(x, y) == pytest.approx(ref, rel=1e-12)
    # labels need not be 0-based or contiguous
    assert dm.discrete_mutual_info(10 * x + 3, y - 7) == pytest.approx(ref, rel=1e-12)


def test_mig_copying_code_is_one():
    f = SAMPLE(np.random.default_rng(8), 8000)
    z = copy_code(seed=9)(f)
    # 40 bins resolve every factor value (largest factor has 40 values)
    res = dm.mig(z, f, num_bins=40)
    assert res["mi_matrix"].shape == (len(SIZES) + 4, len(SIZES))
    # each copy latent carries exactly its factor's entropy
    np.testing.assert_allclose(np.diag(res["mi_matrix"][: len(SIZES)]), res["factor_entropy"], rtol=1e-12)
    ref_h = [-np.sum((c / c.sum()) * np.log(c / c.sum())) for c in (np.bincount(f[:, k]) for k in range(len(SIZES)))]
    np.testing.assert_allclose(res["factor_entropy"], ref_h, rtol=1e-12)
    assert res["mig"] > 0.95
    assert np.all(res["per_factor"] > 0.9)
    # with the default 20 bins only factors with <= 20 values are fully resolved
    res20 = dm.mig(z, f)
    small = [k for k, s in enumerate(SIZES) if s <= 20]
    large = [k for k, s in enumerate(SIZES) if s > 20]
    assert np.all(res20["per_factor"][small] > 0.95)
    assert np.all(res20["per_factor"][large] < 0.9)


def test_mig_random_code_is_zero():
    f = SAMPLE(np.random.default_rng(10), 8000)
    res = dm.mig(random_code(seed=11)(f), f)
    assert res["mig"] < 0.02
    assert np.all(res["per_factor"] < 0.05)


def test_mig_entangled_code_is_lower():
    f = SAMPLE(np.random.default_rng(12), 8000)
    ent = dm.mig(entangled_code(f), f, num_bins=40)
    cop = dm.mig(copy_code(seed=13)(f), f, num_bins=40)
    assert ent["mig"] < cop["mig"] - 0.2
    # the two mixed factors (1 and 5) have small gaps; the copied ones do not
    assert np.all(ent["per_factor"][[1, 5]] < 0.3)
    assert np.all(ent["per_factor"][[0, 2, 3, 4]] > 0.9)


def test_mig_constant_factor_is_skipped_and_gap_by_hand():
    # factor 0 constant; factor 1 in {0, 1}; z0 copies factor 1, z1 is independent of it
    f = np.stack([np.zeros(8, int), np.array([0, 0, 0, 0, 1, 1, 1, 1])], axis=1)
    z = np.stack([f[:, 1].astype(float), np.array([0, 1, 0, 1, 0, 1, 0, 1], float)], axis=1)
    res = dm.mig(z, f, num_bins=2)
    assert np.isnan(res["per_factor"][0])
    assert res["per_factor"][1] == pytest.approx(1.0)
    assert res["mig"] == pytest.approx(1.0)
