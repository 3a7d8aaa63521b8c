"""The whole model: shapes, parameter layout, gradients against jax.grad, AdamW, clipping, training."""
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from model import (Architecture, TrainHyperparams, adamw, count_params, decode, encode, init_params, init_state,
                   loss_and_grads, train_step)
from model.clip import clip_by_global_norm, clip_by_value, global_norm
from benchmarks.reference import reference_loss
from model.model import VAE, build, chunk_size

ROOT = Path(__file__).resolve().parents[1]

PYTORCH_SHAPES = {
    "encoder.conv1.weight": (32, 3, 4, 4), "encoder.conv1.bias": (32,),
    "encoder.conv2.weight": (64, 32, 4, 4), "encoder.conv2.bias": (64,),
    "encoder.conv3.weight": (128, 64, 4, 4), "encoder.conv3.bias": (128,),
    "encoder.fc_mu.weight": (128, 8192), "encoder.fc_mu.bias": (128,),
    "encoder.fc_logvar.weight": (128, 8192), "encoder.fc_logvar.bias": (128,),
    "decoder.fc.weight": (8192, 128), "decoder.fc.bias": (8192,),
    "decoder.deconv1.weight": (128, 64, 4, 4), "decoder.deconv1.bias": (64,),
    "decoder.deconv2.weight": (64, 32, 4, 4), "decoder.deconv2.bias": (32,),
    "decoder.deconv3.weight": (32, 3, 4, 4), "decoder.deconv3.bias": (3,),
}
SMALL = {"channels": (4, 6, 8), "latent_dim": 5, "image_size": 16}


def test_parameter_names_shapes_and_count():
    params = init_params(jax.random.PRNGKey(0))
    assert {k: tuple(v.shape) for k, v in params.items()} == PYTORCH_SHAPES
    assert count_params(params) == 3_485_251
    assert Architecture.of(params) == Architecture(3, (32, 64, 128), 128, 64)
    assert build().param_shapes() == PYTORCH_SHAPES  # the shapes a load checks against, with no random draw


def test_architecture_is_read_from_the_shapes_and_validated():
    for arch in (Architecture(), Architecture(**SMALL), Architecture(1, (8, 8, 8, 8), 3, 32)):
        assert Architecture.of(build(arch).param_shapes()) == arch
    with pytest.raises(ValueError, match="divisible"):
        Architecture(image_size=60)
    with pytest.raises(ValueError, match="positive"):
        Architecture(latent_dim=0)
    with pytest.raises(ValueError, match="not those of this model"):
        Architecture.of({"decoder.fc.weight": (8192, 128)})


def test_glorot_init_and_distinct_heads():
    params = init_params(jax.random.PRNGKey(0))
    w = np.asarray(params["encoder.conv2.weight"])
    limit = np.sqrt(6 / (32 * 16 + 64 * 16))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.95 * limit
    np.testing.assert_allclose(w.var(), limit ** 2 / 3, rtol=0.05)  # Var U[−a,a] = a²/3
    assert not np.allclose(params["encoder.fc_mu.weight"], params["encoder.fc_logvar.weight"])
    assert all(np.all(params[k] == 0) for k in params if k.endswith(".bias"))


@pytest.mark.slow
def test_shapes_after_every_layer_match_the_seed_table():
    params = init_params(jax.random.PRNGKey(0))
    x = jnp.zeros((2, 3, 64, 64))
    _, _, _, cache = build(layout="NCHW").forward(params, x, jnp.zeros((2, 128)))
    enc_shapes = [relu_out.shape[1:] for _, relu_out in cache.encoder.convs]
    assert enc_shapes == [(32, 32, 32), (64, 16, 16), (128, 8, 8)]
    assert cache.encoder.heads.x.shape == (2, 8192)
    assert cache.decoder.fc.x.shape == (2, 128)
    dec_shapes = [act_out.shape[1:] for _, act_out in cache.decoder.deconvs]
    assert dec_shapes == [(64, 16, 16), (32, 32, 32), (3, 64, 64)]
    mu, logvar = encode(params, x)
    assert mu.shape == logvar.shape == (2, 128)
    assert decode(params, mu).shape == (2, 3, 64, 64)


@pytest.mark.slow
@pytest.mark.parametrize("arch,batch", [({}, 2), (SMALL, 3)])
def test_loss_and_grads_match_jax_grad_float64(arch, batch):
    with jax.enable_x64(True):
        params = jax.tree.map(lambda p: p.astype(jnp.float64), init_params(jax.random.PRNGKey(0), **arch))
        params = {k: v + 0.01 * jax.random.normal(jax.random.PRNGKey(i), v.shape, v.dtype)  # nonzero biases
                  for i, (k, v) in enumerate(params.items())}
        arch = Architecture.of(params)
        x = jax.random.uniform(jax.random.PRNGKey(1), (batch, 3, arch.image_size, arch.image_size), jnp.float64)
        eps = jax.random.normal(jax.random.PRNGKey(2), (batch, arch.latent_dim), jnp.float64)
        metrics, grads = jax.jit(loss_and_grads)(params, x, eps, 0.5)
        (loss, (recon, kl)), expected = jax.value_and_grad(reference_loss, has_aux=True)(params, x, eps, 0.5)
        np.testing.assert_allclose([metrics["loss"], metrics["recon"], metrics["kl"]], [loss, recon, kl], rtol=1e-12)
        assert set(grads) == set(params)
        for name in params:
            scale = float(jnp.max(jnp.abs(expected[name])))
            np.testing.assert_allclose(grads[name], expected[name], rtol=1e-9, atol=1e-10 * scale, err_msg=name)


@pytest.mark.parametrize("layout,chunk,batch", [("NCHW", None, 3), ("NHWC", None, 3), ("NHWC", 2, 5),
                                                pytest.param("NCHW", 3, 7, marks=pytest.mark.slow)])
def test_every_layout_and_chunking_matches_jax_grad_float64(layout, chunk, batch):
    """The NHWC interior and the step taken in slices (with a remainder) are the same gradient."""
    with jax.enable_x64(True):
        params = jax.tree.map(lambda p: p.astype(jnp.float64), init_params(jax.random.PRNGKey(0), **SMALL))
        params = {k: v + 0.01 * jax.random.normal(jax.random.PRNGKey(i), v.shape, v.dtype)
                  for i, (k, v) in enumerate(params.items())}
        vae = VAE(Architecture.of(params), conv="mixed", layout=layout, chunk=chunk)
        x = jax.random.uniform(jax.random.PRNGKey(1), (batch, 3, 16, 16), jnp.float64)
        eps = jax.random.normal(jax.random.PRNGKey(2), (batch, 5), jnp.float64)
        metrics, grads = jax.jit(vae.loss_and_grads)(params, x, eps, 0.5)
        (loss, (recon, kl)), expected = jax.value_and_grad(reference_loss, has_aux=True)(params, x, eps, 0.5)
        np.testing.assert_allclose([metrics["loss"], metrics["recon"], metrics["kl"]], [loss, recon, kl], rtol=1e-12)
        for name in params:
            scale = float(jnp.max(jnp.abs(expected[name])))
            np.testing.assert_allclose(grads[name], expected[name], rtol=1e-9, atol=1e-10 * scale, err_msg=name)
        x_hat = vae.reconstruct(params, x)["x_hat"]
        assert x_hat.shape == x.shape  # PyTorch's layout outside, whatever the interior
        np.testing.assert_allclose(vae.decode(params, eps), VAE(vae.architecture, layout="NCHW").decode(params, eps),
                                   rtol=1e-10)


@pytest.mark.parametrize("batch,chunk,sizes", [(64, 64, 64), (65, 64, 64), (512, 64, 64), (4096, 64, 256),
                                               (10, None, 10)])
def test_chunk_sizes(batch, chunk, sizes):
    assert chunk_size(batch, chunk) == sizes


def test_chunking_is_off_for_bad_values():
    with pytest.raises(ValueError, match="positive"):
        VAE(chunk=0)


@pytest.mark.slow
def test_loss_and_grads_float32_close_to_float64():
    params = init_params(jax.random.PRNGKey(0), **SMALL)
    x = jax.random.uniform(jax.random.PRNGKey(1), (4, 3, 16, 16))
    eps = jax.random.normal(jax.random.PRNGKey(2), (4, 5))
    _, grads = loss_and_grads(params, x, eps, 0.5)
    _, expected = jax.grad(reference_loss, has_aux=True)(params, x, eps, 0.5), None
    expected = jax.grad(lambda p: reference_loss(p, x, eps, 0.5)[0])(params)
    for name in params:
        scale = float(jnp.max(jnp.abs(expected[name])))
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-3, atol=1e-4 * scale, err_msg=name)


def test_adamw_follows_the_paper_step_by_step():
    """Three steps against Algorithm 2 of Loshchilov & Hutter in NumPy float64."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        params = {"a.weight": rng.normal(size=(3, 4)), "a.bias": rng.normal(size=(4,))}
        grads_seq = [{k: rng.normal(size=v.shape) for k, v in params.items()} for _ in range(3)]
        hp = adamw.AdamWHyperparams(lr=0.01, b1=0.8, b2=0.95, eps=1e-6, weight_decay=0.1)
        state = adamw.init({k: jnp.asarray(v) for k, v in params.items()})
        ours = {k: jnp.asarray(v) for k, v in params.items()}
        ref = {k: v.copy() for k, v in params.items()}
        m = {k: np.zeros_like(v) for k, v in params.items()}
        v2 = {k: np.zeros_like(v) for k, v in params.items()}
        for t, g in enumerate(grads_seq, start=1):
            ours, state = adamw.update(ours, {k: jnp.asarray(x) for k, x in g.items()}, state, hp)
            for k in ref:
                m[k] = hp.b1 * m[k] + (1 - hp.b1) * g[k]
                v2[k] = hp.b2 * v2[k] + (1 - hp.b2) * g[k] ** 2
                m_hat, v_hat = m[k] / (1 - hp.b1 ** t), v2[k] / (1 - hp.b2 ** t)
                decay = hp.weight_decay * ref[k] if k.endswith(".weight") else 0.0
                ref[k] = ref[k] - hp.lr * (m_hat / (np.sqrt(v_hat) + hp.eps) + decay)
            for k in ref:
                np.testing.assert_allclose(ours[k], ref[k], rtol=1e-12, err_msg=f"step {t} {k}")
        assert int(state.step) == 3


def test_adamw_weight_decay_is_decoupled_from_the_gradient():
    """With g = 0 the Adam term vanishes and the weight shrinks by exactly lr·λ·θ; biases do not."""
    params = {"w.weight": jnp.full((2, 2), 3.0), "w.bias": jnp.full((2,), 3.0)}
    zero = {k: jnp.zeros_like(v) for k, v in params.items()}
    hp = adamw.AdamWHyperparams(lr=0.1, weight_decay=0.5)
    new, _ = adamw.update(params, zero, adamw.init(params), hp)
    np.testing.assert_allclose(new["w.weight"], 3.0 - 0.1 * 0.5 * 3.0, rtol=1e-6)
    np.testing.assert_allclose(new["w.bias"], 3.0)
    # a huge gradient does not change the size of the decay (L2 regularisation inside g would)
    big = {k: jnp.full_like(v, 1e6) for k, v in params.items()}
    small = {k: jnp.full_like(v, 1e-3) for k, v in params.items()}
    a, _ = adamw.update(params, big, adamw.init(params), hp)
    b, _ = adamw.update(params, small, adamw.init(params), hp)
    np.testing.assert_allclose(a["w.weight"], b["w.weight"], rtol=1e-5)


def test_clipping():
    grads = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([0.0])}  # ‖g‖ = 5
    np.testing.assert_allclose(global_norm(grads), 5.0)
    same = clip_by_global_norm(grads, 10.0)
    np.testing.assert_array_equal(same["a"], grads["a"])
    scaled = clip_by_global_norm(grads, 1.0)
    np.testing.assert_allclose(scaled["a"], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(global_norm(scaled), 1.0, rtol=1e-6)
    clipped = clip_by_value({"a": jnp.array([-3.0, 0.5, 2.0])}, 1.0)
    np.testing.assert_array_equal(clipped["a"], [-1.0, 0.5, 1.0])


@pytest.mark.slow
def test_train_step_applies_clipping_and_reports_the_unclipped_norm():
    params = init_params(jax.random.PRNGKey(0), **SMALL)
    x = jax.random.uniform(jax.random.PRNGKey(1), (4, 3, 16, 16))
    key = jax.random.PRNGKey(5)
    eps = jax.random.normal(key, (4, 5))
    _, grads = loss_and_grads(params, x, eps, 0.5)
    before = {k: np.asarray(v) for k, v in params.items()}
    state, metrics = train_step(init_state(params, clip_norm=1e-3, lr=1.0, weight_decay=0.0, b1=0.0, b2=0.0), x, key)
    np.testing.assert_allclose(metrics["grad_norm"], global_norm(grads), rtol=1e-4)
    # with b1 = b2 = 0 the step is lr·g/(|g|+eps): clipping scales g, leaving the sign, so check the moments
    np.testing.assert_allclose(global_norm(state.opt.m), 1e-3, rtol=1e-4)
    assert any(not np.allclose(before[k], state.params[k]) for k in before)


@pytest.mark.slow
def test_train_step_accepts_uint8_and_float_alike():
    params = init_params(jax.random.PRNGKey(0), **SMALL)
    x8 = jax.random.randint(jax.random.PRNGKey(1), (4, 3, 16, 16), 0, 256).astype(jnp.uint8)
    key = jax.random.PRNGKey(2)
    _, m8 = train_step(init_state(params), x8, key)
    _, mf = train_step(init_state(params), x8.astype(jnp.float32) / 255, key)
    np.testing.assert_allclose(m8["loss"], mf["loss"], rtol=1e-6)


@pytest.mark.slow
def test_overfitting_a_small_batch_lowers_the_loss():
    """A broken backward (wrong sign, wrong scale, a missing term) would not get here."""
    arch = {"channels": (8, 16, 32), "latent_dim": 8, "image_size": 32}
    params = init_params(jax.random.PRNGKey(0), **arch)
    yy, xx = np.mgrid[0:32, 0:32]
    images = np.stack([np.stack([(xx + 3 * i) % 32 / 31, (yy * (i + 1)) % 32 / 31, np.full((32, 32), i / 15)])
                       for i in range(16)]).astype(np.float32)
    x = jnp.asarray(images)
    state = init_state(params, lr=3e-3, beta=0.1)
    losses = []
    for step in range(250):
        state, metrics = train_step(state, x, jax.random.PRNGKey(step))
        losses.append(float(metrics["loss"]))
    first, last = np.mean(losses[:5]), np.mean(losses[-10:])
    assert last < 0.3 * first, (first, last)


FORBIDDEN = re.compile(r"jax\.(grad|vjp|jvp|value_and_grad|linear_transpose|custom_vjp|custom_jvp|linearize)\b"
                       r"|from jax import [^\n]*\b(grad|vjp|jvp|value_and_grad|linear_transpose|custom_vjp|custom_jvp)\b"
                       r"|^\s*(import|from) (flax|optax|equinox|haiku)\b", re.MULTILINE)


PRODUCT_PACKAGES = ("model", "imagedata", "training", "analysis", "system")


def test_no_autodiff_in_the_product():
    files = [f for package in PRODUCT_PACKAGES for f in sorted((ROOT / package).rglob("*.py"))]
    files += sorted(ROOT.glob("*.py"))
    assert {f.parent.name for f in files} >= set(PRODUCT_PACKAGES), "the product files were not found"
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "benchmarks"}
    assert packages <= set(PRODUCT_PACKAGES), f"a package the check does not scan: {packages - set(PRODUCT_PACKAGES)}"
    offenders = [f"{f.relative_to(ROOT)}: {m.group(0)}" for f in files for m in FORBIDDEN.finditer(f.read_text())]
    assert not offenders, "autodiff in the product: " + "; ".join(offenders)


def test_the_autodiff_check_can_fail():
    assert FORBIDDEN.search("g = jax.grad(f)(x)") and FORBIDDEN.search("from jax import vjp")
    assert FORBIDDEN.search("import optax") and not FORBIDDEN.search("gradient = manual_grad(x)")


def test_the_cosine_schedule_scales_the_learning_rate_of_the_step():
    assert float(adamw.cosine_factor(0, 10)) == 1.0 and float(adamw.cosine_factor(10, 10)) == 0.0
    np.testing.assert_allclose(float(adamw.cosine_factor(5, 10)), 0.5, atol=1e-7)
    assert float(adamw.cosine_factor(3, float("inf"))) == 1.0 and float(adamw.cosine_factor(30, 10)) == 0.0
    params = init_params(jax.random.PRNGKey(0), **SMALL)
    x = jax.random.uniform(jax.random.PRNGKey(1), (4, 3, 16, 16))
    key = jax.random.PRNGKey(2)
    scheduled = lambda: init_state(params, TrainHyperparams(lr_decay_steps=4.0))  # a fresh one: steps donate it
    first, _ = train_step(scheduled(), x, key)  # factor 1 at the first update: the constant step
    constant, _ = train_step(init_state(params), x, key)
    for name in params:
        np.testing.assert_array_equal(first.params[name], constant.params[name], err_msg=name)
    at_end = scheduled()
    at_end = at_end._replace(opt=at_end.opt._replace(step=jnp.asarray(4, jnp.int32)))
    after, _ = train_step(at_end, x, key)  # factor 0 after T updates: nothing moves, weight decay included
    for name in params:
        np.testing.assert_array_equal(after.params[name], params[name], err_msg=name)
