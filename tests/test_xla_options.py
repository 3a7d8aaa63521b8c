"""The per-backend XLA options: applied where accepted, dropped with a warning where not."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from model import init_params, loss_and_grads
from system import xla


def test_cpu_options_leave_convolutions_to_xla():
    opts = xla.options("cpu")
    if opts is None:
        pytest.skip("this XLA build does not know the option (the fallback is tested below)")
    f = lambda x, w: jax.lax.conv_general_dilated(x, w, (2, 2), ((1, 1), (1, 1)))
    x, w = jnp.ones((4, 32, 32, 32)), jnp.ones((64, 32, 4, 4))  # conv2 of the seed model
    default = jax.jit(f).lower(x, w).compile().as_text()
    chosen = jax.jit(f, compiler_options=opts).lower(x, w).compile().as_text()
    if "ynn_fusion" not in default:
        pytest.skip("this XLA build does not hand convolutions to YNNPACK: the options change nothing")
    assert "ynn_fusion" not in chosen and re.search(r"= \S+ convolution\(", chosen)


def test_unknown_option_falls_back_with_a_warning(monkeypatch):
    monkeypatch.setitem(xla.OPTIONS, "cpu", {"xla_cpu_experimental_ynn_fusion_type": "NO_SUCH_TYPE"})
    with pytest.warns(RuntimeWarning, match="not accepted"):
        assert xla.options("cpu") is None


def test_environment_turns_options_off(monkeypatch):
    monkeypatch.setenv("BVAEX_XLA_OPTIONS", "none")
    assert xla.options("cpu") is None


@pytest.mark.slow
def test_gradients_with_options_match_xla_defaults():
    """The options change which library computes the convolutions, not the result (seed model, batch 2).

    Gradients, not a train step, are compared: Adam's first step is ≈ lr·sign(g), so float32
    rounding of a near-zero gradient would show as a full 2·lr difference in the weights.
    """
    opts = xla.options("cpu")
    if opts is None:
        pytest.skip("this XLA build does not know the option")
    params = init_params(jax.random.PRNGKey(0))
    x = jax.random.randint(jax.random.PRNGKey(1), (2, 3, 64, 64), 0, 256).astype(jnp.uint8)
    args = (params, x, jax.random.normal(jax.random.PRNGKey(2), (2, 128)))
    with_options = jax.jit(loss_and_grads).lower(*args).compile(compiler_options=opts)
    defaults = jax.jit(loss_and_grads).lower(*args).compile()
    if "ynn_fusion" in defaults.as_text():
        assert with_options.as_text().count("ynn_fusion") < defaults.as_text().count("ynn_fusion")
    (metrics, grads), (metrics_ref, grads_ref) = with_options(*args), defaults(*args)
    for name in metrics:
        np.testing.assert_allclose(metrics[name], metrics_ref[name], rtol=1e-5)
    for name in grads:
        scale = float(jnp.max(jnp.abs(grads_ref[name])))
        np.testing.assert_allclose(grads[name], grads_ref[name], rtol=1e-3, atol=1e-4 * scale, err_msg=name)


def test_nested_call_inside_another_jit():
    """A wrapped function traced inside a plain jit runs as a nested jit (options go on top-level jits only)."""
    double = xla.compiled(lambda x: 2 * x)
    np.testing.assert_allclose(jax.jit(lambda x: double(x) + 1)(jnp.ones(3)), 3.0)
    np.testing.assert_allclose(double(jnp.ones(3)), 2.0)
