"""The fast 4×4/stride-2/padding-1 formulations against the generic lax convolutions, in float64."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from model import fast_conv
from model.conv import (Conv2D, TransposedConv2D, conv2d, conv2d_input_grad, conv2d_weight_grad,
                        lax_conv2d_input_grad, lax_conv2d_weight_grad)

# (conv input channels C, conv output channels O, input size H): conv1/deconv3, conv2/deconv2, conv3/deconv1
SEED_SHAPES = [(3, 32, 64), (32, 64, 32), (64, 128, 16)]
BATCH = 2
INPUT_GRADS = [fast_conv.input_grad_s2d, fast_conv.input_grad_col2im, fast_conv.input_grad]
WEIGHT_GRADS = [fast_conv.weight_grad_taps, fast_conv.weight_grad_im2col, fast_conv.weight_grad]


def operands(c, o, h, batch=BATCH):
    """x (N,C,H,H), w (O,C,4,4), dy (N,O,H/2,H/2), float64."""
    kx, kw, ky = jax.random.split(jax.random.PRNGKey(h + c), 3)
    return (jax.random.normal(kx, (batch, c, h, h), jnp.float64),
            jax.random.normal(kw, (o, c, 4, 4), jnp.float64),
            jax.random.normal(ky, (batch, o, h // 2, h // 2), jnp.float64))


def assert_close(got, expected):
    scale = float(jnp.max(jnp.abs(expected)))
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-10, atol=1e-12 * scale)


@pytest.mark.parametrize("shape", SEED_SHAPES)
@pytest.mark.parametrize("formulation", INPUT_GRADS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_input_grad_formulations_equal_lax(shape, formulation, layout):
    c, o, h = shape
    as_layout = (lambda a: a) if layout == "NCHW" else (lambda a: a.transpose(0, 2, 3, 1))
    with jax.enable_x64(True):
        _, w, dy = operands(c, o, h)
        got = jax.jit(formulation, static_argnames="layout")(as_layout(dy), w, layout=layout)
        assert_close(got, as_layout(lax_conv2d_input_grad(dy, w, 2, 1, (h, h))))


@pytest.mark.parametrize("shape", SEED_SHAPES)
@pytest.mark.parametrize("formulation", WEIGHT_GRADS, ids=lambda f: f.__name__)
def test_weight_grad_formulations_equal_lax(shape, formulation):
    c, o, h = shape
    with jax.enable_x64(True):
        x, _, dy = operands(c, o, h)
        got = jax.jit(formulation)(x, dy)
        assert_close(got, lax_conv2d_weight_grad(x, dy, 2, 1, 4))


@pytest.mark.parametrize("shape", SEED_SHAPES)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_forward_s2d_equals_the_strided_conv(shape, layout):
    c, o, h = shape
    as_layout = (lambda a: a) if layout == "NCHW" else (lambda a: a.transpose(0, 2, 3, 1))
    with jax.enable_x64(True):
        x, w, _ = operands(c, o, h)
        got = jax.jit(fast_conv.forward_s2d, static_argnames="layout")(as_layout(x), w, layout=layout)
        assert_close(got, as_layout(conv2d(x, w, 2, 1)))
        assert_close(conv2d(as_layout(x), w, 2, 1, layout, "mixed"), as_layout(conv2d(x, w, 2, 1)))


@pytest.mark.parametrize("shape", SEED_SHAPES)
def test_space_to_depth_forward_equals_the_strided_conv(shape):
    """y = conv(s2d(x_pad), w2) with stride 1: the identity every formulation rests on."""
    c, o, h = shape
    with jax.enable_x64(True):
        x, w, _ = operands(c, o, h)
        y = jax.lax.conv_general_dilated(fast_conv.space_to_depth(x), fast_conv.weight_to_s2d(w), (1, 1), "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC")).transpose(0, 3, 1, 2)
        assert_close(y, conv2d(x, w, 2, 1))


def test_depth_to_space_is_the_adjoint_of_space_to_depth():
    """⟨s2d(x), Y⟩ = ⟨x, d2s(Y)⟩: d2s also drops the padding border."""
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 6, 8), jnp.float64)
        Y = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 5, 12), jnp.float64)
        np.testing.assert_allclose(jnp.vdot(fast_conv.space_to_depth(x), Y),
                                   jnp.vdot(x, fast_conv.depth_to_space(Y, 3)), rtol=1e-12)


def test_weight_relayout_round_trips():
    w = jax.random.normal(jax.random.PRNGKey(0), (5, 3, 4, 4))
    w2 = fast_conv.weight_to_s2d(w)
    assert w2.shape == (2, 2, 12, 5)
    np.testing.assert_array_equal(w2[1, 0, 3 * 3 + 2, 4], w[4, 2, 2 + 1, 0 + 1])  # (i,j,(r,s,c),o) = (1,0,(1,1,2),4)
    np.testing.assert_array_equal(fast_conv.weight_from_s2d(w2, 5, 3), w)


@pytest.mark.parametrize("kernel,stride,padding,input_hw,output_hw,expected", [
    (4, 2, 1, (64, 64), (32, 32), True),
    (4, 2, 1, (8, 6), (4, 3), True),
    (4, 2, 1, (7, 5), (3, 2), False),    # odd sizes: the stride leaves rows uncovered
    (4, 2, 1, (9, 9), (4, 4), False),    # a transposed conv with output_padding 1
    (3, 1, 1, (8, 8), (8, 8), False),
    (4, 2, 0, (8, 8), (3, 3), False),
    (5, 2, 2, (8, 8), (4, 4), False),
])
def test_fast_path_is_taken_only_where_it_applies(kernel, stride, padding, input_hw, output_hw, expected):
    assert fast_conv.applies(kernel, stride, padding, input_hw, output_hw) is expected


@pytest.mark.parametrize("shape", SEED_SHAPES)
@pytest.mark.parametrize("formulation", ["fast", "mixed", "narrow"])
def test_dispatching_primitives_equal_lax(shape, formulation):
    c, o, h = shape
    with jax.enable_x64(True):
        x, w, dy = operands(c, o, h)
        assert_close(jax.jit(lambda a, b: conv2d_input_grad(a, b, 2, 1, (h, h), formulation))(dy, w),
                     lax_conv2d_input_grad(dy, w, 2, 1, (h, h)))
        assert_close(jax.jit(lambda a, b: conv2d_weight_grad(a, b, 2, 1, 4, formulation))(x, dy),
                     lax_conv2d_weight_grad(x, dy, 2, 1, 4))


@pytest.mark.parametrize("shape", SEED_SHAPES)
@pytest.mark.parametrize("layer_cls", [Conv2D, TransposedConv2D])
@pytest.mark.parametrize("formulation", ["fast", pytest.param("mixed", marks=pytest.mark.slow)])
def test_seed_layers_backward_match_vjp(shape, layer_cls, formulation):
    """Whole layers at the seed's shapes (a transposed layer maps O → C channels, H/2 → H), with
    every gradient map in ``fast_conv`` ("fast") and with the CPU's choice ("mixed")."""
    c, o, h = shape
    with jax.enable_x64(True):
        layer = Conv2D(c, o, formulation=formulation) if layer_cls is Conv2D else \
            TransposedConv2D(o, c, formulation=formulation)
        x = operands(c, o, h)[0] if layer_cls is Conv2D else operands(c, o, h)[2]
        params = layer.init(jax.random.PRNGKey(1), jnp.float64)
        params["bias"] = jax.random.normal(jax.random.PRNGKey(2), params["bias"].shape, jnp.float64)
        y, vjp = jax.vjp(lambda p, inp: layer.forward(p, inp)[0], params, x)
        dy = jax.random.normal(jax.random.PRNGKey(3), y.shape, jnp.float64)
        dparams_expected, dx_expected = vjp(dy)
        _, cache = layer.forward(params, x)
        dx, dparams = jax.jit(layer.backward)(params, cache, dy)
        assert_close(dx, dx_expected)
        for name in params:
            assert_close(dparams[name], dparams_expected[name])
