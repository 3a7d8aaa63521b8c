"""Encoder: three stride-2 convolutions with ReLU, flatten (C,H,W), then the μ and log σ² heads.

    x (N,3,64,64) → conv1 → ReLU → (N,32,32,32) → conv2 → ReLU → (N,64,16,16)
      → conv3 → ReLU → (N,128,8,8) → flatten → (N,8192) → fc_mu, fc_logvar → (N,128) each
"""
from typing import NamedTuple

import jax.numpy as jnp

from .activation import ReLU
from .conv import Conv2D
from .dense import Dense
from .params import prefixed, sub


def heads_params(params):
    """fc_mu and fc_logvar as one Dense of 2D outputs: one (2D, F) GEMM instead of two."""
    return {"weight": jnp.concatenate([params["encoder.fc_mu.weight"], params["encoder.fc_logvar.weight"]]),
            "bias": jnp.concatenate([params["encoder.fc_mu.bias"], params["encoder.fc_logvar.bias"]])}


class EncoderCache(NamedTuple):
    convs: tuple      # per conv layer: (conv cache, relu cache)
    flat_shape: tuple  # (N,C,H,W) before flattening
    heads: object     # Dense cache of the fused heads


class Encoder:
    def __init__(self, in_channels=3, channels=(32, 64, 128), latent_dim=128, image_size=64, formulation="auto"):
        sizes = (in_channels,) + tuple(channels)
        self.convs = [(f"encoder.conv{i + 1}", Conv2D(sizes[i], sizes[i + 1], 4, 2, 1, formulation=formulation))
                      for i in range(len(channels))]
        self.final_size = image_size // 2 ** len(channels)
        self.flat_features = channels[-1] * self.final_size ** 2
        self.latent_dim = latent_dim
        self.fc_mu = Dense(self.flat_features, latent_dim)
        self.fc_logvar = Dense(self.flat_features, latent_dim)
        self.heads = Dense(self.flat_features, 2 * latent_dim)

    def init(self, keys):
        params = {}
        for (name, layer), key in zip(self.convs, keys[:len(self.convs)]):
            params.update(prefixed(name, layer.init(key)))
        key_mu, key_logvar = keys[len(self.convs):len(self.convs) + 2]  # distinct keys: the heads differ
        params.update(prefixed("encoder.fc_mu", self.fc_mu.init(key_mu)))
        params.update(prefixed("encoder.fc_logvar", self.fc_logvar.init(key_logvar)))
        return params

    def forward(self, params, x):
        """x: (N,3,H,W) float -> ((mu, logvar) each (N,D), cache)."""
        caches = []
        h = x
        for name, layer in self.convs:
            h, conv_cache = layer.forward(sub(params, name), h)
            h, relu_cache = ReLU.forward(h)
            caches.append((conv_cache, relu_cache))
        flat_shape = h.shape
        out, heads_cache = self.heads.forward(heads_params(params), h.reshape(h.shape[0], -1))
        mu, logvar = out[:, :self.latent_dim], out[:, self.latent_dim:]
        return (mu, logvar), EncoderCache(tuple(caches), flat_shape, heads_cache)

    def backward(self, params, cache, dmu, dlogvar):
        """Walks the forward in reverse; returns the encoder's parameter gradients.

        The input gradient of conv1 is never formed: nothing upstream of the image learns.
        """
        grads = {}
        dh, dheads = self.heads.backward(heads_params(params), cache.heads,
                                         jnp.concatenate([dmu, dlogvar], axis=1))
        d = self.latent_dim
        grads["encoder.fc_mu.weight"], grads["encoder.fc_logvar.weight"] = dheads["weight"][:d], dheads["weight"][d:]
        grads["encoder.fc_mu.bias"], grads["encoder.fc_logvar.bias"] = dheads["bias"][:d], dheads["bias"][d:]
        dh = dh.reshape(cache.flat_shape)  # unflatten (N, C·H·W) -> (N,C,H,W)
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
