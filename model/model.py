"""The β-VAE: encoder → reparameterisation → decoder → ELBO, and one jitted train step.

Every gradient below is written by hand: ``VAE.backward`` walks ``VAE.forward`` in reverse,
layer by layer, starting from the ELBO's gradients in x̂, μ and log σ². μ and log σ² receive
gradient from two places (the KL term and the reparameterisation): gradients add up at forks.

A ``VAE`` is built once per ``Architecture`` and conv formulation (``build``): its networks are
fixed then, "auto" is resolved then, and its compiled functions close over them, so nothing is
re-derived while tracing. Parameters are a flat dict named and shaped like a PyTorch
``state_dict``. The module-level ``encode``, ``decode``, ``reconstruct``, ``loss_and_grads`` and
``train_step`` take parameters alone and use the VAE of their architecture.
"""
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from system.xla import compiled

from . import adamw, precision
from .adamw import AdamWHyperparams
from .architecture import Architecture
from .clip import clip_by_global_norm, clip_by_value, global_norm
from .conv import from_nchw, resolve_formulation, resolve_layout, to_nchw
from .decoder import Decoder
from .elbo import DEFAULT_BETA, ELBO, per_image
from .encoder import Encoder
from .reparameterize import Reparameterize


class ModelCache(NamedTuple):
    encoder: object
    reparameterize: object
    decoder: object


class TrainHyperparams(NamedTuple):
    """The scalars of the train step: the objective's β, AdamW's, and the clipping thresholds.

    In a ``TrainState`` they are float32 arrays, so changing one never recompiles the step.
    """
    beta: float = DEFAULT_BETA
    adamw: AdamWHyperparams = AdamWHyperparams()
    clip_norm: float | None = None   # global-norm clipping threshold (None: off)
    clip_value: float | None = None  # element-wise clipping to [−c, c] (None: off)
    lr_decay_steps: float | None = None  # cosine decay of lr to 0 over this many steps (None: constant);
    # set from the run's length by the training loop, so not among the recorded (flat) names

    FLAT = ("beta",) + AdamWHyperparams._fields + ("clip_norm", "clip_value")

    @classmethod
    def from_flat(cls, **values) -> "TrainHyperparams":
        """From flat names (``beta``, ``lr``, ``b1``, ``b2``, ``eps``, ``weight_decay``, ``clip_norm``, ``clip_value``)."""
        unknown = set(values) - set(cls.FLAT)
        if unknown:
            raise TypeError(f"unknown hyperparameters {sorted(unknown)}; known: {cls.FLAT}")
        opt = {k: values.pop(k) for k in AdamWHyperparams._fields if k in values}
        return cls(**values, adamw=AdamWHyperparams(**opt))

    def flat(self) -> dict:
        return {"beta": self.beta, **self.adamw._asdict(), "clip_norm": self.clip_norm, "clip_value": self.clip_value}

    def as_arrays(self) -> "TrainHyperparams":
        """float32 scalars, clipping off as an infinite threshold."""
        f32 = lambda v: jnp.asarray(float("inf") if v is None else v, jnp.float32)
        return TrainHyperparams(f32(self.beta), AdamWHyperparams(*map(f32, self.adamw)),
                                f32(self.clip_norm), f32(self.clip_value), f32(self.lr_decay_steps))


class TrainState(NamedTuple):
    params: dict
    opt: adamw.AdamWState
    hparams: TrainHyperparams  # of float32 arrays (``TrainHyperparams.as_arrays``)


class VAE:
    """The networks of one ``Architecture``, with the conv formulation ``conv`` resolved once.

    ``conv``: "auto" (the backend's fastest) or one of ``model.conv.FORMULATIONS``; ``layout``: of
    the activations inside the networks, "auto" (the backend's fastest), "NCHW" or "NHWC"
    (parameters and every array given or returned are PyTorch's layout either way); ``chunk``: the
    train step takes its gradient over slices of at most this many images and sums them ("auto":
    the backend's measured choice, ``CHUNK``; None: the whole batch at once).
    """

    def __init__(self, architecture=Architecture(), conv="auto", layout="auto", chunk="auto"):
        self.architecture = architecture
        self.conv = resolve_formulation(conv)  # the one place "auto" becomes a formulation
        self.layout = resolve_layout(layout, self.conv)
        self.chunk = resolve_chunk(chunk)
        self.encoder = Encoder(architecture, self.conv, self.layout)
        self.decoder = Decoder(architecture, self.conv, self.layout)
        self._compiled = {"encode": compiled(self._encode), "decode": compiled(self._decode),
                          "reconstruct": compiled(self._reconstruct),
                          "step": compiled(self.step, donate_argnums=0, static_argnames="compute_dtype")}

    def __repr__(self):
        return f"VAE({self.architecture}, conv={self.conv!r}, layout={self.layout!r}, chunk={self.chunk!r})"

    def param_shapes(self) -> dict:
        """{state_dict name: shape} of every parameter, in the model's order."""
        return self.encoder.shapes() | self.decoder.shapes()

    def init(self, key) -> dict:
        """Glorot-uniform weights and zero biases, keyed by PyTorch state_dict names."""
        keys = jax.random.split(key, 2 * len(self.architecture.channels) + 3)
        n = len(self.encoder.convs) + 2  # the encoder's convs and its two heads
        return self.encoder.init(keys[:n]) | self.decoder.init(keys[n:])

    # ------------------------------------------------------------------ forward and backward

    def forward(self, params, x, eps):
        """x: (N,3,H,W) float in the VAE's ``layout`` (``interior``), eps: (N,D) -> (x_hat, mu, logvar, cache)."""
        (mu, logvar), encoder_cache = self.encoder.forward(params, x)
        z, reparameterize_cache = Reparameterize.forward(mu, logvar, eps)
        x_hat, decoder_cache = self.decoder.forward(params, z)
        return x_hat, mu, logvar, ModelCache(encoder_cache, reparameterize_cache, decoder_cache)

    def backward(self, params, cache, dx_hat, dmu, dlogvar):
        """The reverse of ``forward``: from ∂loss/∂x̂ and the KL's ∂loss/∂μ, ∂loss/∂logσ² to all grads."""
        dz, grads = self.decoder.backward(params, cache.decoder, dx_hat)
        dmu_z, dlogvar_z = Reparameterize.backward(cache.reparameterize, dz)
        grads.update(self.encoder.backward(params, cache.encoder, dmu + dmu_z, dlogvar + dlogvar_z))  # forks add
        return {name: grads[name] for name in params}

    def loss_and_grads(self, params, x, eps, beta=DEFAULT_BETA):
        """metrics {'loss', 'recon', 'kl'} (batch means) and grads shaped like params.

        With a ``chunk`` smaller than the batch, the batch is taken in slices of ``chunk`` images:
        the loss is a mean of per-image terms, so it and its gradient are the slices' means
        weighted by their sizes. The same arithmetic in cache-sized pieces (``docs/speed.md``).
        """
        n = x.shape[0]
        size = chunk_size(n, self.chunk)
        if size >= n:
            return self.batch_loss_and_grads(params, x, eps, beta)
        total = None
        for start in range(0, n, size):  # static slices: unrolled, so XLA schedules each one alone
            part = self.batch_loss_and_grads(params, x[start:start + size], eps[start:start + size], beta)
            weight = min(size, n - start) / n
            part = jax.tree.map(lambda a: a * weight, part)
            total = part if total is None else jax.tree.map(jnp.add, total, part)
        return total

    def batch_loss_and_grads(self, params, x, eps, beta=DEFAULT_BETA):
        """``loss_and_grads`` of the whole batch at once: the ELBO's forward and backward."""
        x = self.interior(to_float(x))
        x_hat, mu, logvar, cache = self.forward(params, x, eps)
        elbo = ELBO(beta)
        metrics, elbo_cache = elbo.forward(x_hat, x, mu, logvar)
        dx_hat, dmu, dlogvar = elbo.backward(elbo_cache)  # dloss = 1
        return metrics, self.backward(params, cache, dx_hat, dmu, dlogvar)

    # ------------------------------------------------------------------ compiled

    def encode(self, params, x):
        """x: (N,3,H,W) in [0,1] (or uint8) -> (mu, logvar), each (N,D); compiled."""
        return self._compiled["encode"](params, x)

    def decode(self, params, z):
        """z: (N,D) -> x_hat: (N,3,H,W) in (0,1); compiled."""
        return self._compiled["decode"](params, z)

    def reconstruct(self, params, x):
        """Per-image evaluation, decoding μ (no sampling noise); compiled.

        x: (N,3,H,W) uint8 or float -> {'x_hat' (N,3,H,W), 'mu', 'logvar' (N,D), 'recon', 'kl' (N,)}.
        """
        return self._compiled["reconstruct"](params, x)

    def train_step(self, state, x, key, compute_dtype="float32"):
        """One compiled ``step``: forward, manual backward, clipping, AdamW; the state's buffers are donated.

        state: TrainState; x: (N,3,H,W) uint8 or float in [0,1]; key: PRNG key for ε;
        compute_dtype: "float32" or "bfloat16" (the pass in bfloat16 against float32 master weights,
        ``model/precision.py``). Returns (new state, {'loss', 'recon', 'kl', 'grad_norm'}).
        """
        return self._compiled["step"](state, x, key, compute_dtype=compute_dtype)

    def interior(self, x):
        """NCHW images in the layout the networks compute in."""
        return from_nchw(x, self.layout)

    def _encode(self, params, x):
        (mu, logvar), _ = self.encoder.forward(params, self.interior(to_float(x)))
        return mu, logvar

    def _decode(self, params, z):
        return to_nchw(self.decoder.forward(params, z)[0], self.layout)

    def _reconstruct(self, params, x):
        x = to_float(x)
        (mu, logvar), _ = self.encoder.forward(params, self.interior(x))
        x_hat = to_nchw(self.decoder.forward(params, mu)[0], self.layout)
        recon, kl = per_image(x_hat, x, mu, logvar)
        return {"x_hat": x_hat, "mu": mu, "logvar": logvar, "recon": recon, "kl": kl}

    def step(self, state, x, key, compute_dtype="float32"):
        """The train step, uncompiled (``train_step`` compiles it; benchmarks compile it their own way)."""
        params, hp = state.params, state.hparams
        eps = jax.random.normal(key, (x.shape[0], self.architecture.latent_dim), jnp.float32)
        dtype = precision.compute_dtype(compute_dtype)
        if dtype == jnp.float32:
            metrics, grads = self.loss_and_grads(params, x, eps, hp.beta)
        else:  # float32 master weights, the pass in ``dtype``, float32 gradients for clipping and AdamW
            x = to_float(x).astype(dtype)
            metrics, grads = self.loss_and_grads(precision.cast_tree(params, dtype), x, eps.astype(dtype), hp.beta)
            grads = precision.cast_tree(grads, jnp.float32)
        norm = global_norm(grads)
        grads = clip_by_value(clip_by_global_norm(grads, hp.clip_norm, norm), hp.clip_value)
        lr = hp.adamw.lr * adamw.cosine_factor(state.opt.step, hp.lr_decay_steps)
        params, opt = adamw.update(params, grads, state.opt, hp.adamw._replace(lr=lr))
        return TrainState(params, opt, hp), dict(metrics, grad_norm=norm)


@functools.lru_cache(maxsize=None)
def build(architecture=Architecture(), conv="auto", layout="auto", chunk="auto") -> VAE:
    """The VAE of ``architecture`` with formulation ``conv``, activation ``layout`` and step
    ``chunk``, built once for each."""
    return VAE(architecture, conv, layout, chunk)


CHUNK = {"cpu": 64}  # images per gradient slice of the train step, by backend (docs/speed.md)
MAX_CHUNKS = 16  # the slices are unrolled: beyond this many, larger slices keep compiling quick


def resolve_chunk(chunk="auto", backend=None):
    """The step's slice size for ``chunk`` ("auto": ``CHUNK`` of the backend on one device; None
    with several devices, whose data-parallel split of the batch slices would cut across)."""
    if chunk == "auto":
        return CHUNK.get(backend or jax.default_backend()) if jax.device_count() == 1 else None
    if chunk is not None and (not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"chunk must be a positive number of images, None or 'auto', not {chunk!r}")
    return chunk


def chunk_size(batch, chunk):
    """Images per slice of a batch of ``batch`` (the whole batch when ``chunk`` is None)."""
    if chunk is None or batch <= chunk:
        return batch
    return max(chunk, -(-batch // MAX_CHUNKS))


def vae_of(params, conv="auto") -> VAE:
    """The VAE that ``params`` belong to: its architecture read from their shapes."""
    return build(Architecture.of(params), conv)


def to_float(x):
    """uint8 images in [0, 255] -> float32 in [0, 1]; float input passes through."""
    return x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x


def count_params(params):
    return sum(int(p.size) for p in params.values())


def init_params(key, architecture=None, **fields):
    """Glorot-uniform weights and zero biases of ``architecture`` (or ``Architecture(**fields)``)."""
    return build(architecture or Architecture(**fields)).init(key)


def encode(params, x, conv="auto"):
    """x: (N,3,H,W) in [0,1] (or uint8) -> (mu, logvar), each (N,D)."""
    return vae_of(params, conv).encode(params, x)


def decode(params, z, conv="auto"):
    """z: (N,D) -> x_hat: (N,3,H,W) in (0,1)."""
    return vae_of(params, conv).decode(params, z)


def reconstruct(params, x, conv="auto"):
    """{'x_hat', 'mu', 'logvar', 'recon', 'kl'} per image, decoding μ (``VAE.reconstruct``)."""
    return vae_of(params, conv).reconstruct(params, x)


def loss_and_grads(params, x, eps, beta=DEFAULT_BETA, conv="auto"):
    """metrics {'loss', 'recon', 'kl'} (batch means) and grads shaped like params."""
    return vae_of(params, conv).loss_and_grads(params, x, eps, beta)


def init_state(params, hparams=None, **flat):
    """Fresh optimizer state with ``hparams`` (a ``TrainHyperparams``; flat names override it).

    The parameters are copied: ``train_step`` donates the state, and the caller's arrays stay valid.
    """
    hp = hparams or TrainHyperparams()
    hp = TrainHyperparams.from_flat(**(hp.flat() | flat))._replace(lr_decay_steps=hp.lr_decay_steps)
    params = {name: jnp.array(p, copy=True) for name, p in params.items()}
    return TrainState(params, adamw.init(params), hp.as_arrays())


def train_step(state, x, key, compute_dtype="float32", conv="auto"):
    """One compiled step of the VAE the parameters belong to (``VAE.train_step``); conv: the
    convolution formulation (``model/conv.py``)."""
    return vae_of(state.params, conv).train_step(state, x, key, compute_dtype=compute_dtype)
