"""bfloat16 compute against float32 master weights, and the choice of convolution formulation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from model import conv, init_params, init_state, loss_and_grads, train_step
from model.elbo import ELBO
from model.precision import accumulation_dtype, cast_tree, compute_dtype

SMALL = {"channels": (4, 6, 8), "latent_dim": 5, "image_size": 16}
SEED = {"channels": (32, 64, 128), "latent_dim": 128, "image_size": 64}


def test_accumulation_dtype_never_narrows():
    assert accumulation_dtype(jnp.bfloat16) == jnp.float32
    assert accumulation_dtype(jnp.float32) == jnp.float32
    with jax.enable_x64(True):
        assert accumulation_dtype(jnp.float64) == jnp.float64
    with pytest.raises(ValueError, match="compute dtype"):
        compute_dtype("float16")


@pytest.mark.slow
def test_elbo_sums_in_float32_and_returns_gradients_in_the_input_dtype():
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    x = jax.random.uniform(keys[0], (8, 3, 16, 16))
    x_hat = jax.random.uniform(keys[1], (8, 3, 16, 16))
    mu, logvar = jax.random.normal(keys[2], (8, 5)), 0.3 * jax.random.normal(keys[3], (8, 5))
    elbo = ELBO(0.5)
    m32, c32 = elbo.forward(x_hat, x, mu, logvar)
    m16, c16 = elbo.forward(*(a.astype(jnp.bfloat16) for a in (x_hat, x, mu, logvar)))
    assert m16["loss"].dtype == jnp.float32
    np.testing.assert_allclose(m16["loss"], m32["loss"], rtol=2e-2)  # only the inputs' rounding
    for g16, g32 in zip(elbo.backward(c16), elbo.backward(c32)):
        assert g16.dtype == jnp.bfloat16
        np.testing.assert_allclose(np.asarray(g16, np.float32), g32, rtol=0.05, atol=0.02 * float(jnp.abs(g32).max()))


def _relative_error(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


@pytest.mark.slow
def test_bfloat16_gradients_are_close_to_float32():
    params = init_params(jax.random.PRNGKey(0), **SEED)
    params = {k: v + 0.01 * jax.random.normal(jax.random.PRNGKey(i), v.shape) for i, (k, v) in enumerate(params.items())}
    x = jax.random.uniform(jax.random.PRNGKey(1), (2, 3, 64, 64))
    eps = jax.random.normal(jax.random.PRNGKey(2), (2, 128))
    m32, g32 = jax.jit(loss_and_grads)(params, x, eps, 0.5)
    m16, g16 = jax.jit(loss_and_grads)(cast_tree(params, jnp.bfloat16), x.astype(jnp.bfloat16), eps.astype(jnp.bfloat16), 0.5)
    np.testing.assert_allclose(m16["loss"], m32["loss"], rtol=2e-2)
    errors = {name: _relative_error(g16[name], g32[name]) for name in params}
    assert all(g.dtype == jnp.bfloat16 or name.endswith(".bias") for name, g in g16.items())
    # bf16 keeps 8 bits (≈ 0.4 % per rounding), but these gradients are ill-conditioned: float32
    # arithmetic on the bf16-rounded parameters and images alone lands 6 % from the float32 ones
    # (decoder.fc), and the whole bf16 pass measured at most 7.6 %.
    assert max(errors.values()) < 0.12, errors
    # and the check can fail: a gradient of the wrong parameter is far off
    assert _relative_error(g16["decoder.deconv2.weight"][::-1], g32["decoder.deconv2.weight"]) > 0.5


@pytest.mark.slow
def test_bfloat16_train_step_keeps_float32_master_weights_and_tracks_float32():
    params = init_params(jax.random.PRNGKey(0), **SMALL)
    x = jax.random.randint(jax.random.PRNGKey(1), (16, 3, 16, 16), 0, 256).astype(jnp.uint8)
    s32, s16 = init_state(params, lr=3e-3), init_state(params, lr=3e-3)
    for step in range(10):
        s32, m32 = train_step(s32, x, jax.random.PRNGKey(step))
        s16, m16 = train_step(s16, x, jax.random.PRNGKey(step), compute_dtype="bfloat16")
    assert all(p.dtype == jnp.float32 for p in s16.params.values())
    assert all(m.dtype == jnp.float32 for m in jax.tree.leaves(s16.opt) if jnp.issubdtype(m.dtype, jnp.floating))
    assert np.isfinite(float(m16["loss"]))
    np.testing.assert_allclose(m16["loss"], m32["loss"], rtol=0.05)
    assert any(not np.array_equal(s16.params[k], s32.params[k]) for k in params)  # it did run in bf16


def test_formulation_choice():
    assert conv.resolve_formulation("auto") == conv.AUTO.get(jax.default_backend(), "lax")
    assert conv.resolve_formulation("auto", "gpu") == "fast" and conv.resolve_formulation("auto", "tpu") == "lax"
    assert conv.resolve_formulation("lax") == "lax"
    fast = lambda name, hw, c, gradient="input": conv.uses_fast_conv(name, gradient, c, 4, 2, 1, hw, tuple(s // 2 for s in hw))
    assert not fast("lax", (64, 64), 3)
    assert fast("narrow", (64, 64), 3) and not fast("narrow", (32, 32), 32)  # fast_conv for the 3-channel maps only
    assert fast("fast", (32, 32), 32) and fast("fast", (32, 32), 32, "weight")
    assert not conv.uses_fast_conv("fast", "input", 3, 3, 1, 1, (32, 32), (32, 32))  # another kernel: lax
    assert fast("mixed", (32, 32), 32) and fast("mixed", (64, 64), 3)  # fast_conv input gradients,
    assert not fast("mixed", (32, 32), 32, "weight") and not fast("mixed", (64, 64), 3, "weight")  # lax weight ones
    assert conv.Conv2D(3, 8, formulation="fast").formulation == "fast"
    with pytest.raises(ValueError, match="one of"):
        conv.Conv2D(3, 8, formulation="cudnn")


@pytest.mark.slow
def test_lax_and_fast_formulations_give_the_same_model_gradients_float64():
    with jax.enable_x64(True):
        params = jax.tree.map(lambda p: p.astype(jnp.float64), init_params(jax.random.PRNGKey(0), **SMALL))
        x = jax.random.uniform(jax.random.PRNGKey(1), (3, 3, 16, 16), jnp.float64)
        eps = jax.random.normal(jax.random.PRNGKey(2), (3, 5), jnp.float64)
        results = {}
        step = jax.jit(loss_and_grads, static_argnames="conv")
        for name in ("fast", "mixed", "narrow", "lax"):
            results[name] = step(params, x, eps, 0.5, conv=name)
        m_lax, g_lax = results["lax"]
        for formulation in ("fast", "mixed", "narrow"):
            m, g = results[formulation]
            np.testing.assert_allclose(m["loss"], m_lax["loss"], rtol=1e-12)
            for name in params:
                scale = float(jnp.max(jnp.abs(g_lax[name])))
                np.testing.assert_allclose(g[name], g_lax[name], rtol=1e-9, atol=1e-11 * scale,
                                           err_msg=f"{formulation} {name}")
