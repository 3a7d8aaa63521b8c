"""Encoder: stride-2 convolutions with ReLU, flatten (C,H,W), then the μ and log σ² heads.

    x (N,3,64,64) → conv1 → ReLU → (N,32,32,32) → conv2 → ReLU → (N,64,16,16)
      → conv3 → ReLU → (N,128,8,8) → flatten → (N,8192) → fc_mu, fc_logvar → (N,128) each

The two heads are two Dense(8192→128) layers in the state_dict (``encoder.fc_mu``,
``encoder.fc_logvar``), each initialised on its own; they are computed as one Dense(8192→256)
whose rows are μ's then log σ²'s: one GEMM instead of two.
"""
from typing import NamedTuple

import jax.numpy as jnp

from .activation import ReLU
from .conv import Conv2D, from_nchw, to_nchw
from .dense import Dense
from .params import prefixed, sub

HEADS = ("encoder.fc_mu", "encoder.fc_logvar")


def heads_params(params):
    """fc_mu and fc_logvar stacked into the one Dense of 2D outputs."""
    return {k: jnp.concatenate([params[f"{head}.{k}"] for head in HEADS]) for k in ("weight", "bias")}


class EncoderCache(NamedTuple):
    convs: tuple      # per conv layer: (conv cache, relu cache)
    flat_shape: tuple  # (N,C,H,W) before flattening
    heads: object     # Dense cache of the stacked heads


class Encoder:
    def __init__(self, architecture, formulation="lax", layout="NCHW"):
        sizes = (architecture.in_channels,) + architecture.channels
        self.layout = layout  # of the activations; the flattening is always PyTorch's (C,H,W) order
        self.convs = [(f"encoder.conv{i + 1}", Conv2D(sizes[i], sizes[i + 1], 4, 2, 1, formulation=formulation,
                                                      layout=layout))
                      for i in range(len(architecture.channels))]
        self.latent_dim = architecture.latent_dim
        self.heads = Dense(architecture.flat_features, 2 * architecture.latent_dim)

    def shapes(self):
        """{state_dict name: shape} of the encoder's parameters."""
        shapes = {}
        for name, layer in self.convs:
            shapes.update(prefixed(name, layer.shapes()))
        for head in HEADS:
            shapes.update(prefixed(head, {"weight": (self.latent_dim, self.heads.in_features),
                                          "bias": (self.latent_dim,)}))
        return shapes

    def init(self, keys):
        params = {}
        for (name, layer), key in zip(self.convs, keys[:len(self.convs)]):
            params.update(prefixed(name, layer.init(key)))
        head = Dense(self.heads.in_features, self.latent_dim)  # each head is a Dense(F→D) of its own
        for name, key in zip(HEADS, keys[len(self.convs):]):  # distinct keys: the heads differ
            params.update(prefixed(name, head.init(key)))
        return params

    def forward(self, params, x):
        """x: (N,3,H,W) float -> ((mu, logvar) each (N,D), cache)."""
        caches = []
        h = x
        for name, layer in self.convs:
            h, conv_cache = layer.forward(sub(params, name), h)
            h, relu_cache = ReLU.forward(h)
            caches.append((conv_cache, relu_cache))
        h = to_nchw(h, self.layout)
        flat_shape = h.shape
        out, heads_cache = self.heads.forward(heads_params(params), h.reshape(h.shape[0], -1))
        mu, logvar = out[:, :self.latent_dim], out[:, self.latent_dim:]
        return (mu, logvar), EncoderCache(tuple(caches), flat_shape, heads_cache)

    def backward(self, params, cache, dmu, dlogvar):
        """Walks the forward in reverse; returns the encoder's parameter gradients.

        The input gradient of conv1 is never formed: nothing upstream of the image learns.
        """
        dh, dheads = self.heads.backward(heads_params(params), cache.heads, jnp.concatenate([dmu, dlogvar], axis=1))
        d = self.latent_dim
        grads = {}
        for head, rows in zip(HEADS, (slice(0, d), slice(d, 2 * d))):  # the stacked rows back to each head
            grads.update(prefixed(head, {"weight": dheads["weight"][rows], "bias": dheads["bias"][rows]}))
        dh = from_nchw(dh.reshape(cache.flat_shape), self.layout)  # unflatten (N, C·H·W) -> (N,C,H,W)
        for i in reversed(range(len(self.convs))):
            name, layer = self.convs[i]
            conv_cache, relu_cache = cache.convs[i]
            dh = ReLU.backward(relu_cache, dh)
            if i == 0:
                grads.update(prefixed(name, layer.param_grads(conv_cache, dh)))
            else:
                dh, dlayer = layer.backward(sub(params, name), conv_cache, dh)
                grads.update(prefixed(name, dlayer))
        return grads
