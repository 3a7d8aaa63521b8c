"""Decoder: Dense to (C,8,8), then stride-2 transposed convolutions, ReLU, ReLU, Sigmoid.

    z (N,128) → fc → (N,8192) → reshape → (N,128,8,8) → deconv1 → ReLU → (N,64,16,16)
      → deconv2 → ReLU → (N,32,32,32) → deconv3 → Sigmoid → (N,3,64,64)
"""
from typing import NamedTuple

from .activation import ReLU, Sigmoid
from .conv import TransposedConv2D, from_nchw, to_nchw
from .dense import Dense
from .params import prefixed, sub


class DecoderCache(NamedTuple):
    fc: object      # Dense cache
    deconvs: tuple  # per transposed conv: (its cache, its activation's cache)


class Decoder:
    def __init__(self, architecture, formulation="lax", layout="NCHW"):
        self.layout = layout  # of the activations; fc's outputs are read in PyTorch's (C,H,W) order
        widths = tuple(reversed(architecture.channels)) + (architecture.in_channels,)  # 128, 64, 32, 3
        self.start_shape = (widths[0], architecture.final_size, architecture.final_size)  # (128, 8, 8)
        self.fc = Dense(architecture.latent_dim, architecture.flat_features)
        self.deconvs = [(f"decoder.deconv{i + 1}", TransposedConv2D(widths[i], widths[i + 1], 4, 2, 1,
                                                                    formulation=formulation, layout=layout))
                        for i in range(len(architecture.channels))]

    def shapes(self):
        """{state_dict name: shape} of the decoder's parameters."""
        shapes = prefixed("decoder.fc", self.fc.shapes())
        for name, layer in self.deconvs:
            shapes.update(prefixed(name, layer.shapes()))
        return shapes

    def init(self, keys):
        params = prefixed("decoder.fc", self.fc.init(keys[0]))
        for (name, layer), key in zip(self.deconvs, keys[1:]):
            params.update(prefixed(name, layer.init(key)))
        return params

    def forward(self, params, z):
        """z: (N,D) -> x_hat: (N,3,H,W) in (0,1), cache."""
        h, fc_cache = self.fc.forward(sub(params, "decoder.fc"), z)
        h = from_nchw(h.reshape((h.shape[0],) + self.start_shape), self.layout)
        caches = []
        for i, (name, layer) in enumerate(self.deconvs):
            h, deconv_cache = layer.forward(sub(params, name), h)
            h, act_cache = self.activation(i).forward(h)
            caches.append((deconv_cache, act_cache))
        return h, DecoderCache(fc_cache, tuple(caches))

    def backward(self, params, cache, dx_hat):
        """Walks the forward in reverse: returns (dz, parameter gradients)."""
        grads = {}
        dh = dx_hat
        for i in reversed(range(len(self.deconvs))):
            name, layer = self.deconvs[i]
            deconv_cache, act_cache = cache.deconvs[i]
            dh = self.activation(i).backward(act_cache, dh)
            dh, dlayer = layer.backward(sub(params, name), deconv_cache, dh)
            grads.update(prefixed(name, dlayer))
        dh = to_nchw(dh, self.layout).reshape(dh.shape[0], -1)  # flatten (N,C,H,W) -> (N, C·H·W)
        dz, dfc = self.fc.backward(sub(params, "decoder.fc"), cache.fc, dh)
        grads.update(prefixed("decoder.fc", dfc))
        return dz, grads

    def activation(self, i):
        """ReLU after every transposed conv but the last, whose Sigmoid maps to pixel values in (0, 1)."""
        return Sigmoid if i == len(self.deconvs) - 1 else ReLU
