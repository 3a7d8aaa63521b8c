"""The β-VAE: encoder → reparameterisation → decoder → ELBO, and one jitted train step.

Every gradient below is written by hand: ``backward`` walks ``forward`` in reverse, layer by
layer, starting from the ELBO's gradients in x̂, μ and log σ². μ and log σ² receive gradient
from two places (the KL term and the reparameterisation): gradients add up at forks.

Parameters are a flat dict named and shaped like a PyTorch ``state_dict``; the architecture
(channels, latent size, image size) is read back from those shapes, so ``encode``/``decode``
need nothing but the parameters. ``conv`` (a static argument everywhere) picks the
convolution gradients' formulation (``model/conv.py``); "auto" is the backend's fastest.
"""
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from system.xla import compiled

from . import adamw, precision
from .clip import clip_by_global_norm, clip_by_value, global_norm
from .conv import resolve_formulation
from .decoder import Decoder
from .elbo import DEFAULT_BETA, ELBO, per_image
from .encoder import Encoder
from .reparameterize import Reparameterize

DEFAULT_ARCHITECTURE = {"in_channels": 3, "channels": (32, 64, 128), "latent_dim": 128, "image_size": 64}


@functools.lru_cache(maxsize=None)
def _networks(in_channels, channels, latent_dim, image_size, formulation="lax"):
    return (Encoder(in_channels, channels, latent_dim, image_size, formulation),
            Decoder(in_channels, channels, latent_dim, image_size, formulation))


def architecture(params):
    """{'in_channels', 'channels', 'latent_dim', 'image_size'} read from the parameter shapes."""
    channels, i = [], 1
    while f"encoder.conv{i}.weight" in params:
        channels.append(params[f"encoder.conv{i}.weight"].shape[0])
        i += 1
    latent_dim, flat = params["encoder.fc_mu.weight"].shape
    final_size = round((flat / channels[-1]) ** 0.5)
    return {"in_channels": params["encoder.conv1.weight"].shape[1], "channels": tuple(channels),
            "latent_dim": latent_dim, "image_size": final_size * 2 ** len(channels)}


def networks(params, conv="auto"):
    """(Encoder, Decoder) of the architecture of ``params``, with conv formulation ``conv``."""
    arch = architecture(params)
    return _networks(arch["in_channels"], arch["channels"], arch["latent_dim"], arch["image_size"],
                     resolve_formulation(conv))


def init_params(key, *, in_channels=3, channels=(32, 64, 128), latent_dim=128, image_size=64):
    """Glorot-uniform weights and zero biases, keyed by PyTorch state_dict names."""
    if image_size % 2 ** len(channels):
        raise ValueError(f"image_size {image_size} must be divisible by 2**{len(channels)}")
    encoder, decoder = _networks(in_channels, tuple(channels), latent_dim, image_size)
    keys = jax.random.split(key, 2 * len(channels) + 3)
    params = encoder.init(keys[:len(channels) + 2])
    params.update(decoder.init(keys[len(channels) + 2:]))
    return params


def count_params(params):
    return sum(int(p.size) for p in params.values())


def to_float(x):
    """uint8 images in [0, 255] -> float32 in [0, 1]; float input passes through."""
    return x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x


@functools.partial(compiled, static_argnames="conv")
def encode(params, x, conv="auto"):
    """x: (N,3,H,W) in [0,1] (or uint8) -> (mu, logvar), each (N,D)."""
    encoder, _ = networks(params, conv)
    (mu, logvar), _ = encoder.forward(params, to_float(x))
    return mu, logvar


@functools.partial(compiled, static_argnames="conv")
def decode(params, z, conv="auto"):
    """z: (N,D) -> x_hat: (N,3,H,W) in (0,1)."""
    _, decoder = networks(params, conv)
    return decoder.forward(params, z)[0]


@functools.partial(compiled, static_argnames="conv")
def reconstruct(params, x, conv="auto"):
    """Per-image evaluation, decoding μ (no sampling noise).

    x: (N,3,H,W) uint8 or float -> {'x_hat' (N,3,H,W), 'mu', 'logvar' (N,D), 'recon', 'kl' (N,)}.
    """
    x = to_float(x)
    encoder, decoder = networks(params, conv)
    (mu, logvar), _ = encoder.forward(params, x)
    x_hat, _ = decoder.forward(params, mu)
    recon, kl = per_image(x_hat, x, mu, logvar)
    return {"x_hat": x_hat, "mu": mu, "logvar": logvar, "recon": recon, "kl": kl}


class ModelCache(NamedTuple):
    encoder: object
    reparameterize: object
    decoder: object


def forward(params, x, eps, conv="auto"):
    """x: (N,3,H,W) float, eps: (N,D) -> (x_hat, mu, logvar, cache)."""
    encoder, decoder = networks(params, conv)
    (mu, logvar), encoder_cache = encoder.forward(params, x)
    z, reparameterize_cache = Reparameterize.forward(mu, logvar, eps)
    x_hat, decoder_cache = decoder.forward(params, z)
    return x_hat, mu, logvar, ModelCache(encoder_cache, reparameterize_cache, decoder_cache)


def backward(params, cache, dx_hat, dmu, dlogvar, conv="auto"):
    """The reverse of ``forward``: from ∂loss/∂x̂ and the KL's ∂loss/∂μ, ∂loss/∂logσ² to all grads."""
    encoder, decoder = networks(params, conv)
    dz, grads = decoder.backward(params, cache.decoder, dx_hat)
    dmu_z, dlogvar_z = Reparameterize.backward(cache.reparameterize, dz)
    grads.update(encoder.backward(params, cache.encoder, dmu + dmu_z, dlogvar + dlogvar_z))  # forks add
    return {name: grads[name] for name in params}


def loss_and_grads(params, x, eps, beta=DEFAULT_BETA, conv="auto"):
    """metrics {'loss', 'recon', 'kl'} (batch means) and grads shaped like params."""
    x_hat, mu, logvar, cache = forward(params, to_float(x), eps, conv)
    elbo = ELBO(beta)
    metrics, elbo_cache = elbo.forward(x_hat, to_float(x), mu, logvar)
    dx_hat, dmu, dlogvar = elbo.backward(elbo_cache)  # dloss = 1
    return metrics, backward(params, cache, dx_hat, dmu, dlogvar, conv)


class TrainHyperparams(NamedTuple):
    """Scalars of the train step, held as arrays in the state so changing them never recompiles."""
    beta: float = DEFAULT_BETA
    lr: float = 1e-3
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.01
    clip_norm: float = float("inf")   # global-norm clipping threshold (inf: off)
    clip_value: float = float("inf")  # element-wise clipping to [−c, c] (inf: off)


class TrainState(NamedTuple):
    params: dict
    opt: adamw.AdamWState
    hparams: TrainHyperparams


def init_state(params, **hparams):
    """Fresh optimizer state; keyword arguments override ``TrainHyperparams`` defaults.

    The parameters are copied: ``train_step`` donates the state, and the caller's arrays stay valid.
    """
    hp = TrainHyperparams(**hparams)
    hp = TrainHyperparams(*(jnp.asarray(v, jnp.float32) for v in hp))
    params = {name: jnp.array(p, copy=True) for name, p in params.items()}
    return TrainState(params, adamw.init(params), hp)


def _train_step(state, x, key, compute_dtype="float32", conv="auto"):
    params, hp = state.params, state.hparams
    eps = jax.random.normal(key, (x.shape[0], architecture(params)["latent_dim"]), jnp.float32)
    dtype = precision.compute_dtype(compute_dtype)
    if dtype == jnp.float32:
        metrics, grads = loss_and_grads(params, x, eps, hp.beta, conv)
    else:  # float32 master weights, the pass in ``dtype``, float32 gradients for clipping and AdamW
        x = to_float(x).astype(dtype)
        metrics, grads = loss_and_grads(precision.cast_tree(params, dtype), x, eps.astype(dtype), hp.beta, conv)
        grads = precision.cast_tree(grads, jnp.float32)
    norm = global_norm(grads)
    grads = clip_by_value(clip_by_global_norm(grads, hp.clip_norm, norm), hp.clip_value)
    opt_hp = adamw.AdamWHyperparams(hp.lr, hp.b1, hp.b2, hp.eps, hp.weight_decay)
    params, opt = adamw.update(params, grads, state.opt, opt_hp)
    metrics = dict(metrics, grad_norm=norm)
    return TrainState(params, opt, hp), metrics


_compiled_train_step = compiled(_train_step, donate_argnums=0, static_argnames=("compute_dtype", "conv"))


def train_step(state, x, key, compute_dtype="float32", conv="auto"):
    """One compiled step: forward, manual backward, clipping, AdamW.

    state: TrainState; x: (N,3,H,W) uint8 or float in [0,1]; key: PRNG key for ε;
    compute_dtype: "float32" or "bfloat16" (the pass in bfloat16 against float32 master weights,
    ``model/precision.py``); conv: the convolution formulation (``model/conv.py``).
    Returns (new state, {'loss', 'recon', 'kl', 'grad_norm'}). The state's buffers are donated.
    """
    return _compiled_train_step(state, x, key, compute_dtype=compute_dtype, conv=resolve_formulation(conv))
