"""Strided 2-D convolution and its transpose, with hand-written gradients.

Shape legend: N = batch, C = input channels, O = output channels, H, W = input height
and width, Ho, Wo = output height and width, K = kernel size, S = stride, P = padding.
Activations are NCHW; Conv2D weights are OIHW and TransposedConv2D weights are IOHW, the
layouts of PyTorch's ``Conv2d`` and ``ConvTranspose2d``. Biases are per output channel.

The three primitives below are everything both layers need, because a transposed
convolution *is* the input-gradient of a convolution:

    conv2d(x, w)                 y[n,o,h,w]  = Σ_{c,a,b} x_pad[n,c,S·h+a,S·w+b] · w[o,c,a,b]
    conv2d_input_grad(dy, w)     dx          = convᵀ(dy)  (dy zero-dilated by S, w flipped)
    conv2d_weight_grad(x, dy)    dw[o,c,a,b] = Σ_{n,h,w} dy[n,o,h,w] · x_pad[n,c,S·h+a,S·w+b]

For any hyperparameters each is one ``lax.conv_general_dilated``. For 4×4 kernels, stride 2,
padding 1 and even sizes (every layer of the seed model) the two gradient maps may instead use
the formulations of ``model/fast_conv.py``, tested equal to the lax ones. Which maps do is the
layer's ``formulation``, a constructor argument (see ``FORMULATIONS``; "auto" is resolved once,
where the model is built); ``uses_fast_conv`` is the one place that decides. ``docs/speed.md``
has the measurements behind ``AUTO``.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from system.xla import fusion_boundary

from . import fast_conv
from .init import glorot_uniform
from .precision import accumulation_dtype


def conv_output_size(size, kernel, stride, padding):
    """Spatial size of a convolution's output: ⌊(size + 2P − K)/S⌋ + 1."""
    return (size + 2 * padding - kernel) // stride + 1


LAYOUTS = ("NCHW", "NHWC")  # of activations; weights are always PyTorch's OIHW / IOHW


def spatial(shape, layout="NCHW"):
    """(H, W) of an activation shape in ``layout``."""
    return tuple(shape[2:]) if layout == "NCHW" else tuple(shape[1:3])


def channel_axis(layout="NCHW"):
    return 1 if layout == "NCHW" else 3


def conv2d(x, w, stride, padding, layout="NCHW", formulation="lax"):
    """x: (N,C,H,W), w: (O,C,K,K) -> y: (N,O,Ho,Wo), no bias (activations in ``layout``)."""
    input_hw = spatial(x.shape, layout)
    output_hw = tuple(conv_output_size(s, w.shape[2], stride, padding) for s in input_hw)
    if layout == "NHWC" and uses_fast_conv(formulation, "forward", w.shape[1], w.shape[2], stride, padding,
                                           input_hw, output_hw):
        return fast_conv.forward_s2d(x, w, layout)
    return lax.conv_general_dilated(
        x, w, window_strides=(stride, stride), padding=((padding, padding),) * 2,
        dimension_numbers=(layout, "OIHW", layout))


def conv2d_input_grad(dy, w, stride, padding, input_hw, formulation="lax", layout="NCHW"):
    """Adjoint of ``conv2d`` in x: dy (N,O,Ho,Wo), w (O,C,K,K) -> dx (N,C,H,W)."""
    if uses_fast_conv(formulation, "input", w.shape[1], w.shape[2], stride, padding, input_hw,
                      spatial(dy.shape, layout)):
        return fast_conv.input_grad(dy, w, layout)
    return lax_conv2d_input_grad(dy, w, stride, padding, input_hw, layout)


def conv2d_weight_grad(x, dy, stride, padding, kernel, formulation="lax", layout="NCHW"):
    """Gradient of ``conv2d`` in w: x (N,C,H,W), dy (N,O,Ho,Wo) -> dw (O,C,K,K)."""
    if layout == "NCHW" and uses_fast_conv(formulation, "weight", x.shape[1], kernel, stride, padding, x.shape[2:],
                                           dy.shape[2:]):
        return fast_conv.weight_grad(x, dy)
    return lax_conv2d_weight_grad(x, dy, stride, padding, kernel, layout)


def init_conv_params(key, shapes, in_channels, out_channels, kernel, dtype):
    """Glorot-uniform weight of ``shapes["weight"]``, zero bias; fans count the K×K taps."""
    fan_in, fan_out = in_channels * kernel * kernel, out_channels * kernel * kernel
    return {"weight": glorot_uniform(key, shapes["weight"], fan_in, fan_out, dtype),
            "bias": jnp.zeros(shapes["bias"], dtype)}


class ConvCache(NamedTuple):
    x: jax.Array  # the layer's input, (N,C,H,W)


class Conv2D:
    """y = conv(x, W) + b.  x: (N,C,H,W) -> y: (N,O,Ho,Wo); params W (O,C,K,K), b (O,)."""

    def __init__(self, in_channels, out_channels, kernel=4, stride=2, padding=1, formulation="lax", layout="NCHW"):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel, self.stride, self.padding = kernel, stride, padding
        self.formulation = concrete_formulation(formulation)
        self.layout = check_layout(layout)

    def shapes(self):
        k = self.kernel
        return {"weight": (self.out_channels, self.in_channels, k, k), "bias": (self.out_channels,)}

    def init(self, key, dtype=jnp.float32):
        return init_conv_params(key, self.shapes(), self.in_channels, self.out_channels, self.kernel, dtype)

    def output_shape(self, input_shape):
        size = lambda s: conv_output_size(s, self.kernel, self.stride, self.padding)
        return with_spatial(input_shape, self.out_channels, map(size, spatial(input_shape, self.layout)), self.layout)

    def forward(self, params, x):
        y = conv2d(x, params["weight"], self.stride, self.padding, self.layout, self.formulation)
        return add_bias(y, params["bias"], self.layout), ConvCache(x)

    def backward(self, params, cache, dy):
        dx = conv2d_input_grad(dy, params["weight"], self.stride, self.padding, spatial(cache.x.shape, self.layout),
                               self.formulation, self.layout)  # dx = convᵀ(dy, W)
        return dx, self.param_grads(cache, dy)

    def param_grads(self, cache, dy):
        """The parameter half of ``backward``, for a first layer whose dx nobody needs."""
        dw = conv2d_weight_grad(weight_grad_input(cache.x, self.layout), dy, self.stride, self.padding,
                                self.kernel, self.formulation, self.layout)  # dW = Σ dy ⊗ x-patches
        return {"weight": dw, "bias": bias_grad(dy, self.layout)}


class TransposedConv2D:
    """y = convᵀ(x, W) + b, PyTorch's ConvTranspose2d.

    x: (N,C,H,W) -> y: (N,O,Ho,Wo) with Ho = (H−1)·S − 2P + K + output_padding;
    params W (C,O,K,K), b (O,). convᵀ with weight W is the input-gradient of a conv from O to
    C channels with the same W read as OIHW, so forward and backward swap the conv primitives.
    """

    def __init__(self, in_channels, out_channels, kernel=4, stride=2, padding=1, output_padding=0,
                 formulation="lax", layout="NCHW"):
        if not 0 <= output_padding < stride:
            raise ValueError(f"output_padding must be in [0, stride), got {output_padding}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel, self.stride, self.padding = kernel, stride, padding
        self.formulation = concrete_formulation(formulation)
        self.layout = check_layout(layout)
        self.output_padding = output_padding

    def shapes(self):
        k = self.kernel
        return {"weight": (self.in_channels, self.out_channels, k, k), "bias": (self.out_channels,)}

    def init(self, key, dtype=jnp.float32):
        return init_conv_params(key, self.shapes(), self.in_channels, self.out_channels, self.kernel, dtype)

    def output_shape(self, input_shape):
        size = lambda s: (s - 1) * self.stride - 2 * self.padding + self.kernel + self.output_padding
        return with_spatial(input_shape, self.out_channels, map(size, spatial(input_shape, self.layout)), self.layout)

    def forward(self, params, x):
        out_hw = spatial(self.output_shape(x.shape), self.layout)
        y = conv2d_input_grad(x, params["weight"], self.stride, self.padding, out_hw, self.formulation, self.layout)
        return add_bias(y, params["bias"], self.layout), ConvCache(x)

    def backward(self, params, cache, dy):
        x = cache.x
        dx = conv2d(dy, params["weight"], self.stride, self.padding, self.layout, self.formulation)  # dx = conv(dy, W)
        dw = conv2d_weight_grad(dy, weight_grad_input(x, self.layout), self.stride, self.padding, self.kernel,
                                self.formulation, self.layout)  # dW[c,o] = Σ x ⊗ dy-patches
        return dx, {"weight": dw, "bias": bias_grad(dy, self.layout)}


def weight_grad_input(x, layout):
    """A layer's input as its weight gradient reads it: in NHWC, behind a fusion boundary.

    The NHWC weight gradient is a convolution that reads the layer's input with the images
    innermost, so XLA:CPU transposes it first. Left alone, XLA fuses the previous layer's bias and
    ReLU into that transposing copy, which then runs at a quarter to a half of a plain copy's speed; the
    boundary makes it copy the activation already computed for the forward (``docs/speed.md``).
    NHWC is the CPU's layout (``LAYOUT_AUTO``); NCHW, every other backend's, passes x as it is.
    """
    return fusion_boundary(x) if layout == "NHWC" else x


def add_bias(y, b, layout):
    """y + b, b broadcast along the channel axis of ``layout``."""
    return y + (b[None, :, None, None] if layout == "NCHW" else b)


def bias_grad(dy, layout):
    """db = Σ_{n,h,w} dy: the sum over every axis but the channel axis."""
    axes = tuple(a for a in range(4) if a != channel_axis(layout))
    return dy.sum(axis=axes, dtype=accumulation_dtype(dy.dtype))


def with_spatial(shape, channels, hw, layout):
    """``shape`` with its channel count and (H, W) replaced, in ``layout``."""
    h, w = hw
    return (shape[0], channels, h, w) if layout == "NCHW" else (shape[0], h, w, channels)


def to_nchw(x, layout):
    """An activation in ``layout`` as NCHW (PyTorch's order, in which the Dense layers flatten)."""
    return x if layout == "NCHW" else x.transpose(0, 3, 1, 2)


def from_nchw(x, layout):
    """An NCHW activation in ``layout``."""
    return x if layout == "NCHW" else x.transpose(0, 2, 3, 1)


def check_layout(layout):
    if layout not in LAYOUTS:
        raise ValueError(f"activation layout must be one of {LAYOUTS}, not {layout!r}")
    return layout


# --------------------------------------------------------------------------- formulations

FORMULATIONS = ("auto", "fast", "mixed", "narrow", "lax")
# "fast": fast_conv for every map where it applies; "mixed": fast_conv input gradients, lax weight
# gradients; "narrow": fast_conv for the 3-channel maps only; "lax": lax everywhere;
# "auto": the one measured fastest on the backend (docs/speed.md), lax on any other backend.
AUTO = {"cpu": "mixed", "gpu": "fast"}


def resolve_formulation(name, backend=None):
    """The concrete formulation of ``name`` ("auto" resolved for ``backend``, default JAX's).

    Called once, where the model is built (``model.VAE``); the layers take its answer.
    """
    if name not in FORMULATIONS:
        raise ValueError(f"conv formulation must be one of {FORMULATIONS}, not {name!r}")
    if name == "auto":
        return AUTO.get(backend or jax.default_backend(), "lax")
    return name


LAYOUT_AUTO = {"cpu": "NHWC"}  # measured: docs/speed.md


def resolve_layout(layout, formulation, backend=None):
    """The activation layout of ``layout`` ("auto": the backend's measured choice, NCHW elsewhere).

    The ``fast_conv`` maps are written for NCHW: with NHWC every map is a lax convolution.
    """
    if layout == "auto":
        layout = LAYOUT_AUTO.get(backend or jax.default_backend(), "NCHW")
    return check_layout(layout)


def concrete_formulation(name):
    """``name`` when it is a concrete formulation (not "auto"); ValueError otherwise."""
    if name == "auto" or name not in FORMULATIONS:
        raise ValueError(f"a layer's conv formulation must be one of {FORMULATIONS[1:]} (resolve 'auto' "
                         f"with resolve_formulation), not {name!r}")
    return name


def uses_fast_conv(formulation, gradient, channels, kernel, stride, padding, input_hw, output_hw):
    """Whether a map ("forward", "input" or "weight") takes the ``fast_conv`` formulation.

    ``formulation``: a concrete one; ``channels``: the channel count on the map's pixel side (3 for
    conv1 and deconv3). The forward takes it only for those narrow layers, and only in NHWC
    (``conv2d``), where it was measured faster (``docs/speed.md``).
    """
    if (formulation == "lax" or (gradient == "forward" and channels > fast_conv.NARROW)
            or (formulation == "narrow" and channels > fast_conv.NARROW)
            or (formulation == "mixed" and gradient == "weight")):
        return False
    return fast_conv.applies(kernel, stride, padding, input_hw, output_hw)


def lax_conv2d_input_grad(dy, w, stride, padding, input_hw, layout="NCHW"):
    """``conv2d_input_grad`` for any hyperparameters, as one lax convolution.

    dx = dilate_S(dy) ⋆ flip(w)ᵀ with padding K−1−P on the low side; the high side also
    receives the rows/columns of x that the stride never reached (they get zero gradient).
    """
    k = w.shape[2]
    pads = []
    for size, out in zip(input_hw, spatial(dy.shape, layout)):
        uncovered = size + 2 * padding - k - stride * (out - 1)
        pads.append((k - 1 - padding, k - 1 - padding + uncovered))
    return lax.conv_general_dilated(
        dy, jnp.flip(w, (2, 3)), window_strides=(1, 1), padding=pads,
        lhs_dilation=(stride, stride), dimension_numbers=(layout, "IOHW", layout))


def lax_conv2d_weight_grad(x, dy, stride, padding, kernel, layout="NCHW"):
    """``conv2d_weight_grad`` for any hyperparameters, as one lax convolution.

    dw[o,c,a,b] = Σ_{n,h,w} dy[n,o,h,w] · x_pad[n,c,S·h+a,S·w+b]: a convolution of x with dy
    dilated by S in which the batch axis is contracted (x read as CNHW, dy as IOHW; in NHWC as
    CHWN and IHWO), written out as OIHW.
    """
    dims = ("CNHW", "IOHW", "CNHW") if layout == "NCHW" else ("CHWN", "IHWO", "CNHW")
    dw = lax.conv_general_dilated(
        x, dy, window_strides=(1, 1), padding=((padding, padding),) * 2,
        rhs_dilation=(stride, stride), dimension_numbers=dims)
    return dw[:, :, :kernel, :kernel]  # uncovered input rows add taps beyond K: drop them
