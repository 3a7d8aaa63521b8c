"""Each layer's forward against an independent reference, each backward against jax.vjp."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from model.activation import ReLU, Sigmoid
from model.conv import Conv2D, TransposedConv2D
from model.dense import Dense
from model.elbo import ELBO
from model.reparameterize import Reparameterize

# (batch, in, out, H, W, kernel, stride, padding): the seed's layer, odd sizes, other hyperparameters
CONV_CASES = [
    (2, 3, 4, 8, 8, 4, 2, 1),
    (1, 2, 3, 7, 5, 4, 2, 1),   # batch 1, non-square, sizes the stride does not divide
    (3, 2, 5, 6, 9, 3, 1, 1),
    (2, 3, 2, 9, 7, 3, 3, 0),
    (1, 1, 1, 5, 5, 5, 2, 2),
]


def reference_conv(x, w, b, stride, padding):
    """Direct loop: y[n,o,i,j] = b[o] + Σ_{c,a,b} x_pad[n,c,S·i+a,S·j+b]·w[o,c,a,b]."""
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho, wo = (h + 2 * padding - k) // stride + 1, (wd + 2 * padding - k) // stride + 1
    y = np.zeros((n, o, ho, wo))
    for i, j in itertools.product(range(ho), range(wo)):
        patch = xp[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
        y[:, :, i, j] = np.einsum("ncab,ocab->no", patch, w)
    return y + b[None, :, None, None]


def reference_conv_transpose(x, w, b, stride, padding, output_padding=0):
    """ConvTranspose2d by its definition: every input pixel scatters w[c] into the output."""
    n, c, h, wd = x.shape
    _, o, k, _ = w.shape
    full = np.zeros((n, o, (h - 1) * stride + k + output_padding, (wd - 1) * stride + k + output_padding))
    for i, j in itertools.product(range(h), range(wd)):
        full[:, :, i * stride:i * stride + k, j * stride:j * stride + k] += np.einsum("nc,coab->noab", x[:, :, i, j], w)
    ho = (h - 1) * stride - 2 * padding + k + output_padding
    wo = (wd - 1) * stride - 2 * padding + k + output_padding
    return full[:, :, padding:padding + ho, padding:padding + wo] + b[None, :, None, None]


def random_params(layer, key, dtype):
    p = layer.init(key, dtype)
    p["bias"] = jax.random.normal(jax.random.fold_in(key, 1), p["bias"].shape, dtype)  # nonzero bias
    return p


def check_vjp(forward, backward, args, dy_key, rtol, atol):
    """Compare backward(dy) with jax.vjp(forward)(dy) for a random cotangent dy."""
    y, vjp = jax.vjp(forward, *args)
    dy = jax.random.normal(dy_key, y.shape, y.dtype)
    expected = vjp(dy)
    got = backward(dy)
    for e, g in zip(jax.tree.leaves(expected), jax.tree.leaves(got)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=rtol, atol=atol)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_forward_matches_direct_loop(case):
    n, c, o, h, w, k, s, p = case
    with jax.enable_x64(True):
        layer = Conv2D(c, o, k, s, p)
        params = random_params(layer, jax.random.PRNGKey(0), jnp.float64)
        x = jax.random.normal(jax.random.PRNGKey(1), (n, c, h, w), jnp.float64)
        y, _ = layer.forward(params, x)
        ref = reference_conv(np.asarray(x), np.asarray(params["weight"]), np.asarray(params["bias"]), s, p)
        assert y.shape == layer.output_shape(x.shape) == ref.shape
        np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("output_padding", [0, 1])
def test_transposed_conv_forward_matches_definition(case, output_padding):
    n, c, o, h, w, k, s, p = case
    if output_padding >= s:
        pytest.skip("output_padding must be below the stride")
    with jax.enable_x64(True):
        layer = TransposedConv2D(c, o, k, s, p, output_padding)
        params = random_params(layer, jax.random.PRNGKey(0), jnp.float64)
        x = jax.random.normal(jax.random.PRNGKey(1), (n, c, h, w), jnp.float64)
        y, _ = layer.forward(params, x)
        ref = reference_conv_transpose(np.asarray(x), np.asarray(params["weight"]), np.asarray(params["bias"]),
                                       s, p, output_padding)
        assert y.shape == layer.output_shape(x.shape) == ref.shape
        np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_and_transposed_conv_are_adjoint(case):
    """⟨conv(x), y⟩ = ⟨x, convᵀ(y)⟩ for the same weight and no bias."""
    n, c, o, h, w, k, s, p = case
    with jax.enable_x64(True):
        conv = Conv2D(c, o, k, s, p)
        params = conv.init(jax.random.PRNGKey(0), jnp.float64)
        x = jax.random.normal(jax.random.PRNGKey(1), (n, c, h, w), jnp.float64)
        y_shape = conv.output_shape(x.shape)
        leftover = (h + 2 * p - k) % s, (w + 2 * p - k) % s
        if leftover[0] != leftover[1]:
            pytest.skip("the transposed layer takes one output_padding for both axes")
        deconv = TransposedConv2D(o, c, k, s, p, output_padding=leftover[0])
        y = jax.random.normal(jax.random.PRNGKey(2), y_shape, jnp.float64)
        zero_bias = lambda prm, ch: {"weight": prm["weight"], "bias": jnp.zeros(ch, jnp.float64)}
        conv_x, _ = conv.forward(params, x)
        convt_y, _ = deconv.forward(zero_bias(params, c), y)
        assert convt_y.shape == x.shape
        np.testing.assert_allclose(jnp.vdot(conv_x, y), jnp.vdot(x, convt_y), rtol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("layer_cls", [Conv2D, TransposedConv2D])
@pytest.mark.parametrize("dtype,rtol,atol", [(jnp.float64, 1e-10, 1e-10),
                                             pytest.param(jnp.float32, 1e-4, 1e-4, marks=pytest.mark.slow)])
def test_conv_backward_matches_vjp(case, layer_cls, dtype, rtol, atol):
    n, c, o, h, w, k, s, p = case
    with jax.enable_x64(dtype == jnp.float64):
        layer = layer_cls(c, o, k, s, p)
        params = random_params(layer, jax.random.PRNGKey(0), dtype)
        x = jax.random.normal(jax.random.PRNGKey(1), (n, c, h, w), dtype)
        _, cache = layer.forward(params, x)
        check_vjp(lambda prm, inp: layer.forward(prm, inp)[0],
                  lambda dy: layer.backward(params, cache, dy)[::-1],  # (dparams, dx) as vjp orders them
                  (params, x), jax.random.PRNGKey(3), rtol, atol)


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("layer_cls", [Conv2D, TransposedConv2D])
def test_nhwc_layers_are_the_nchw_layers_transposed(case, layer_cls):
    """Activations in NHWC, weights in PyTorch's layout: the same forward and, in float64, the
    same backward (checked against jax.vjp of the NHWC forward too)."""
    n, c, o, h, w, k, s, p = case
    nhwc = lambda a: a.transpose(0, 2, 3, 1)
    with jax.enable_x64(True):
        layer, wide = layer_cls(c, o, k, s, p), layer_cls(c, o, k, s, p, layout="NHWC")
        params = random_params(layer, jax.random.PRNGKey(0), jnp.float64)
        x = jax.random.normal(jax.random.PRNGKey(1), (n, c, h, w), jnp.float64)
        y, cache = layer.forward(params, x)
        y_nhwc, cache_nhwc = wide.forward(params, nhwc(x))
        np.testing.assert_allclose(y_nhwc, nhwc(y), rtol=1e-12, atol=1e-12)
        assert wide.output_shape(nhwc(x).shape) == y_nhwc.shape
        dy = jax.random.normal(jax.random.PRNGKey(3), y.shape, jnp.float64)
        dx, dparams = layer.backward(params, cache, dy)
        dx_nhwc, dparams_nhwc = wide.backward(params, cache_nhwc, nhwc(dy))
        np.testing.assert_allclose(dx_nhwc, nhwc(dx), rtol=1e-10, atol=1e-10)
        for name in params:
            np.testing.assert_allclose(dparams_nhwc[name], dparams[name], rtol=1e-10, atol=1e-10)
        check_vjp(lambda prm, inp: wide.forward(prm, inp)[0],
                  lambda d: wide.backward(params, cache_nhwc, d)[::-1],
                  (params, nhwc(x)), jax.random.PRNGKey(4), 1e-10, 1e-10)


def test_conv_param_grads_equal_backward_params():
    layer = Conv2D(3, 4, 4, 2, 1)
    params = random_params(layer, jax.random.PRNGKey(0), jnp.float32)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 8, 8))
    _, cache = layer.forward(params, x)
    dy = jax.random.normal(jax.random.PRNGKey(2), (2, 4, 4, 4))
    full = layer.backward(params, cache, dy)[1]
    only = layer.param_grads(cache, dy)
    for name in full:
        np.testing.assert_array_equal(full[name], only[name])


@pytest.mark.parametrize("n,i,o", [(1, 5, 3), (4, 7, 2), (3, 16, 9)])
def test_dense_forward_and_backward(n, i, o):
    with jax.enable_x64(True):
        layer = Dense(i, o)
        params = random_params(layer, jax.random.PRNGKey(0), jnp.float64)
        x = jax.random.normal(jax.random.PRNGKey(1), (n, i), jnp.float64)
        y, cache = layer.forward(params, x)
        ref = np.einsum("ni,oi->no", np.asarray(x), np.asarray(params["weight"])) + np.asarray(params["bias"])
        np.testing.assert_allclose(y, ref, rtol=1e-12)
        check_vjp(lambda prm, inp: layer.forward(prm, inp)[0],
                  lambda dy: layer.backward(params, cache, dy)[::-1],
                  (params, x), jax.random.PRNGKey(2), 1e-10, 1e-10)


@pytest.mark.parametrize("activation,reference", [
    (ReLU, lambda x: np.maximum(x, 0)),
    (Sigmoid, lambda x: 1 / (1 + np.exp(-x))),
])
def test_activations(activation, reference):
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 5, 6), jnp.float64) * 3
        y, cache = activation.forward(x)
        np.testing.assert_allclose(y, reference(np.asarray(x)), rtol=1e-12)
        check_vjp(lambda inp: activation.forward(inp)[0],
                  lambda dy: (activation.backward(cache, dy),),
                  (x,), jax.random.PRNGKey(1), 1e-10, 1e-12)


def test_sigmoid_is_stable_at_extremes():
    x = jnp.array([-1000.0, -100.0, 0.0, 100.0, 1000.0], jnp.float32)
    y, cache = Sigmoid.forward(x)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(Sigmoid.backward(cache, jnp.ones_like(x))))
    np.testing.assert_allclose(y, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-30)


def test_reparameterize_forward_and_backward():
    with jax.enable_x64(True):
        k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
        mu, logvar, eps = (jax.random.normal(k, (4, 6), jnp.float64) for k in (k1, k2, k3))
        z, cache = Reparameterize.forward(mu, logvar, eps)
        np.testing.assert_allclose(z, np.asarray(mu) + np.sqrt(np.exp(np.asarray(logvar))) * np.asarray(eps), rtol=1e-12)
        check_vjp(lambda m, lv: Reparameterize.forward(m, lv, eps)[0],
                  lambda dz: Reparameterize.backward(cache, dz),
                  (mu, logvar), jax.random.PRNGKey(1), 1e-10, 1e-12)


@pytest.mark.parametrize("beta", [0.5, 1.0, 4.0])
def test_elbo_forward_and_backward(beta):
    with jax.enable_x64(True):
        keys = jax.random.split(jax.random.PRNGKey(0), 4)
        x = jax.random.uniform(keys[0], (3, 2, 4, 5), jnp.float64)
        x_hat = jax.random.uniform(keys[1], (3, 2, 4, 5), jnp.float64)
        mu, logvar = (jax.random.normal(k, (3, 7), jnp.float64) for k in keys[2:])
        elbo = ELBO(beta)
        metrics, cache = elbo.forward(x_hat, x, mu, logvar)
        xn, xh, m, lv = map(np.asarray, (x, x_hat, mu, logvar))
        recon = np.mean(np.sum((xh - xn) ** 2, axis=(1, 2, 3)))
        # KL(N(μ,σ²) ‖ N(0,1)) per dimension = log(1/σ) + (σ² + μ²)/2 − ½
        kl = np.mean(np.sum(-0.5 * lv + (np.exp(lv) + m ** 2) / 2 - 0.5, axis=1))
        np.testing.assert_allclose([metrics["recon"], metrics["kl"], metrics["loss"]], [recon, kl, recon + beta * kl], rtol=1e-12)
        loss = lambda xh_, m_, lv_: elbo.forward(xh_, x, m_, lv_)[0]["loss"]
        expected = jax.grad(loss, argnums=(0, 1, 2))(x_hat, mu, logvar)
        for e, g in zip(expected, elbo.backward(cache)):
            np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-14)
