"""The per-backend XLA options: applied where accepted, dropped with a warning where not."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import model
from model import conv, init_params, loss_and_grads
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


def fused_computations(hlo):
    """{name: body} of every computation in an HLO module's text."""
    return dict(re.findall(r"\n%(\S+) [^\n]*\{\n(.*?)\n\}", hlo, re.S))


def relu_fusions_with_images_innermost(hlo, batch):
    """Fusions of a compiled module that take a maximum (a ReLU) and write an array whose last axis
    has ``batch`` entries: a ReLU recomputed inside the copy that lays an activation out with the
    images innermost, for a weight gradient's convolution."""
    bodies = fused_computations(hlo)
    found = re.findall(r"= f32\[([\d,]*)\][^\n]* fusion\([^\n]*calls=%([^,\s]+)", hlo)
    return [call for dims, call in found if dims.split(",")[-1] == str(batch) and " maximum(" in bodies.get(call, "")]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_fusion_boundary_returns_its_input_bit_for_bit(dtype):
    bits = jnp.uint16 if dtype == jnp.bfloat16 else jnp.uint32
    a = jnp.asarray([0.0, -0.0, 1.5, -2.25, np.inf, -np.inf, np.nan, 3e-39], dtype)
    for first in (a, a[::-1], jnp.full_like(a, np.nan)):  # the predicate reads the first element
        out = jax.jit(xla.fusion_boundary)(first)
        assert out.dtype == first.dtype
        as_bits = lambda v: jax.lax.bitcast_convert_type(v, bits)
        np.testing.assert_array_equal(as_bits(out), as_bits(first))


@pytest.mark.parametrize("boundary", [True, False])
def test_nhwc_step_lays_out_its_activations_without_recomputing_a_relu(boundary, monkeypatch):
    """The NHWC train step copies the activations its weight gradients read, ReLU already applied.

    Without the boundary (``model.conv.weight_grad_input``), XLA recomputes the bias and ReLU of
    the layer before inside those copies: the check is run both ways, so it is known to tell.
    """
    if not boundary:
        monkeypatch.setattr(conv, "fusion_boundary", lambda a: a)
    batch = 6  # no other axis of the model has 6 entries
    vae = model.VAE(layout="NHWC")
    state = model.init_state(vae.init(jax.random.PRNGKey(0)))
    hlo = vae._compiled["step"].lower(state, jnp.zeros((batch, 3, 64, 64), jnp.uint8), jax.random.PRNGKey(1))
    found = relu_fusions_with_images_innermost(hlo.compile().as_text(), batch)
    if boundary:
        assert found == []
    elif not found:
        pytest.skip("this XLA build does not fuse the ReLU into those copies: the boundary changes nothing")
