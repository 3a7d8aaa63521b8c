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

For any hyperparameters each is one ``lax.conv_general_dilated`` (``lax_conv2d_*``). For 4×4
kernels, stride 2, padding 1 and even sizes (every layer of the seed model) the two gradient
maps can dispatch to the formulations of ``model/fast_conv.py``, tested equal to the lax ones.
Which maps do is the formulation (``set_formulation``); "auto" is "mixed" on the CPU and "fast"
on GPUs:

    layers           C→O      map           "fast"               "mixed"          used for
    conv1 / deconv3  3→32     forward       lax                  lax              conv1 y, deconv3 dx
                              input grad    GEMM + col2im        GEMM + col2im    deconv3 y
                              weight grad   im2col GEMM          lax              conv1 dW, deconv3 dW
    conv2 / deconv2  32→64    forward       lax                  lax              conv2 y, deconv2 dx
                              input grad    space-to-depth       space-to-depth   conv2 dx, deconv2 y
                              weight grad   16 tap GEMMs         lax              conv2 dW, deconv2 dW
    conv3 / deconv1  64→128   forward       lax                  lax              conv3 y, deconv1 dx
                              input grad    space-to-depth       space-to-depth   conv3 dx, deconv1 y
                              weight grad   16 tap GEMMs         lax              conv3 dW, deconv1 dW

CPU: a shared 2-core x86-64 (AVX2; KVM reports an AMD EPYC), jax 0.10.2, batch 64, float32,
medians of interleaved runs (``benchmarks/layers.py`` times each candidate alone,
``benchmarks/train_step.py`` the whole step). Whole-step comparisons in one process must jit a
fresh function per candidate: jax.jit caches traces by function, so jitting the same function
again after switching formulations silently reuses the first trace. What decided:
  * 2026-11-27, with XLA's own (Eigen) convolutions in place of YNNPACK's (``model/xla_options.py``),
    whole train step, 10–12 interleaved steps, time relative to "fast" with the maps below
    (weight grad wide / weight grad 3-channel / input grad wide / input grad 3-channel):
    lax / lax / s2d / col2im ("mixed") 0.89–0.90; lax / im2col / s2d / col2im 0.91–0.92;
    lax / lax / s2d / lax 0.90; lax / im2col / s2d / lax 0.91; lax / im2col / lax / col2im 1.00;
    lax everywhere 0.98. Alone, XLA's convolution computes conv2's weight gradient in 28–32 ms
    against 51–54 ms for the 16 tap GEMMs, which read 16 strided copies of the input.
  * Input gradient of the wide layers: space-to-depth (a stride-1 2×2 conv, no zero-dilation)
    ≈ 75–80 % of peak against ≈ 54–72 % for lax (conv2: 53 vs 74 ms); the 4-phase split was equal.
  * 3-channel input gradient: GEMM + col2im beat the lax input gradient 24.5 vs 28.6 ms; for the
    forward no candidate beat lax by more than the noise.
  * Earlier, under YNNPACK's convolutions, the tap GEMMs (and the im2col GEMM for 3 channels)
    beat lax weight gradients, and "fast" was the CPU's choice: the whole ``loss_and_grads`` at
    batch 64 ran at 63–66 % of the matmul peak against 54–58 % with the lax maps only.

On a GPU (``benchmarks/gpu.py``, one NVIDIA H200, jax 0.11.2 with CUDA 13, batch 512; the
choice "auto" makes per backend, ``AUTO`` below):
  * alone, the ``fast_conv`` maps of the 3-channel layers beat cuDNN's (input gradient 0.13 vs
    0.33 ms, weight gradient 0.11 vs 0.21 ms in float32), and cuDNN's beat ``fast_conv`` on the
    wide layers (conv2 weight gradient 0.23 vs 0.35 ms);
  * but in the whole step, where XLA fuses around them, "fast" everywhere was the fastest or
    within 1.5 % of it in all three runs (ms per step, float32: fast 2.45 / 2.55 / 2.91, narrow
    – / 2.61 / 2.87, lax 2.50 / 2.71 / 3.31; bfloat16: fast 2.34 / 2.51 / 2.43, narrow – / 2.70 /
    2.66, lax 2.39 / 2.64 / 3.14; "narrow" is fast_conv for the 3-channel maps only), so "auto"
    is "fast" on GPUs too ("mixed" was not measured there). On the GPU the choice is worth at most
    ≈ 15 %; on the CPU ≈ 10 % with XLA's own convolutions ("mixed" against "fast" or "lax"), and it
    was ≈ 1.5× under YNNPACK's (batch 64, 2026-11-27: 153 img/s fast against 101 lax).
"""
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from . import fast_conv
from .init import glorot_uniform
from .precision import accumulation_dtype


def conv_output_size(size, kernel, stride, padding):
    """Spatial size of a convolution's output: ⌊(size + 2P − K)/S⌋ + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def conv2d(x, w, stride, padding):
    """x: (N,C,H,W), w: (O,C,K,K) -> y: (N,O,Ho,Wo), no bias."""
    return lax.conv_general_dilated(
        x, w, window_strides=(stride, stride), padding=((padding, padding),) * 2,
        dimension_numbers=("NCHW", "OIHW", "NCHW"))


FORMULATIONS = ("auto", "fast", "mixed", "narrow", "lax")
# "auto" per backend, from benchmarks/train_step.py (CPU) and benchmarks/gpu.py (GPU); others: lax
AUTO = {"cpu": "mixed", "gpu": "fast"}
_formulation = os.environ.get("BVAEX_CONV", "auto")


def set_formulation(name):
    """Choose the gradient maps of the 4×4 / stride-2 / padding-1 convolutions.

    "fast": ``fast_conv`` for every layer where it applies; "mixed": ``fast_conv`` for the input
    gradients, lax for the weight gradients; "narrow": ``fast_conv`` only for the 3-channel maps
    (conv1, deconv3), lax for the wide ones; "lax": lax everywhere; "auto" (the
    default, or the environment variable ``BVAEX_CONV``): the one measured fastest on the
    default backend (``AUTO``). The choice is read while a function is traced: a function
    jitted before the change keeps the maps it was compiled with.
    """
    global _formulation
    if name not in FORMULATIONS:
        raise ValueError(f"conv formulation must be one of {FORMULATIONS}, not {name!r}")
    _formulation = name


def formulation():
    """The formulation in force: "fast", "mixed", "narrow" or "lax" ("auto" resolved for the default backend)."""
    if _formulation not in FORMULATIONS:
        raise ValueError(f"BVAEX_CONV must be one of {FORMULATIONS}, not {_formulation!r}")
    if _formulation == "auto":
        return AUTO.get(jax.default_backend(), "lax")
    return _formulation


def _fast(kernel, stride, padding, input_hw, output_hw, channels, gradient="input"):
    """Whether a map with ``channels`` on its pixel side takes the ``fast_conv`` formulation.

    ``gradient``: "input" (``conv2d_input_grad``) or "weight" (``conv2d_weight_grad``).
    """
    chosen = formulation()
    if (chosen == "lax" or (chosen == "narrow" and channels > fast_conv.NARROW)
            or (chosen == "mixed" and gradient == "weight")):
        return False
    return fast_conv.applies(kernel, stride, padding, input_hw, output_hw)


def conv2d_input_grad(dy, w, stride, padding, input_hw):
    """Adjoint of ``conv2d`` in x: dy (N,O,Ho,Wo), w (O,C,K,K) -> dx (N,C,H,W)."""
    if _fast(w.shape[2], stride, padding, input_hw, dy.shape[2:], w.shape[1]):
        return fast_conv.input_grad(dy, w)
    return lax_conv2d_input_grad(dy, w, stride, padding, input_hw)


def conv2d_weight_grad(x, dy, stride, padding, kernel):
    """Gradient of ``conv2d`` in w: x (N,C,H,W), dy (N,O,Ho,Wo) -> dw (O,C,K,K)."""
    if _fast(kernel, stride, padding, x.shape[2:], dy.shape[2:], x.shape[1], "weight"):
        return fast_conv.weight_grad(x, dy)
    return lax_conv2d_weight_grad(x, dy, stride, padding, kernel)


def lax_conv2d_input_grad(dy, w, stride, padding, input_hw):
    """``conv2d_input_grad`` for any hyperparameters, as one lax convolution.

    dx = dilate_S(dy) ⋆ flip(w)ᵀ with padding K−1−P on the low side; the high side also
    receives the rows/columns of x that the stride never reached (they get zero gradient).
    """
    k = w.shape[2]
    pads = []
    for size, out in zip(input_hw, dy.shape[2:]):
        uncovered = size + 2 * padding - k - stride * (out - 1)
        pads.append((k - 1 - padding, k - 1 - padding + uncovered))
    return lax.conv_general_dilated(
        dy, jnp.flip(w, (2, 3)), window_strides=(1, 1), padding=pads,
        lhs_dilation=(stride, stride), dimension_numbers=("NCHW", "IOHW", "NCHW"))


def lax_conv2d_weight_grad(x, dy, stride, padding, kernel):
    """``conv2d_weight_grad`` for any hyperparameters, as one lax convolution.

    dw[o,c,a,b] = Σ_{n,h,w} dy[n,o,h,w] · x_pad[n,c,S·h+a,S·w+b]: a convolution of x with dy
    dilated by S in which the batch axis is contracted (x read as CNHW, dy as IOHW).
    """
    dw = lax.conv_general_dilated(
        x, dy, window_strides=(1, 1), padding=((padding, padding),) * 2,
        rhs_dilation=(stride, stride), dimension_numbers=("CNHW", "IOHW", "CNHW"))
    return dw[:, :, :kernel, :kernel]  # uncovered input rows add taps beyond K: drop them


class ConvCache(NamedTuple):
    x: jax.Array  # the layer's input, (N,C,H,W)


class Conv2D:
    """y = conv(x, W) + b.  x: (N,C,H,W) -> y: (N,O,Ho,Wo); params W (O,C,K,K), b (O,)."""

    def __init__(self, in_channels, out_channels, kernel=4, stride=2, padding=1):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def init(self, key, dtype=jnp.float32):
        k = self.kernel
        fan_in, fan_out = self.in_channels * k * k, self.out_channels * k * k
        shape = (self.out_channels, self.in_channels, k, k)
        return {"weight": glorot_uniform(key, shape, fan_in, fan_out, dtype),
                "bias": jnp.zeros((self.out_channels,), dtype)}

    def output_shape(self, input_shape):
        n, _, h, w = input_shape
        size = lambda s: conv_output_size(s, self.kernel, self.stride, self.padding)
        return (n, self.out_channels, size(h), size(w))

    def forward(self, params, x):
        y = conv2d(x, params["weight"], self.stride, self.padding)
        return y + params["bias"][None, :, None, None], ConvCache(x)

    def backward(self, params, cache, dy):
        dx = conv2d_input_grad(dy, params["weight"], self.stride, self.padding, cache.x.shape[2:])  # dx = convᵀ(dy, W)
        return dx, self.param_grads(cache, dy)

    def param_grads(self, cache, dy):
        """The parameter half of ``backward``, for a first layer whose dx nobody needs."""
        dw = conv2d_weight_grad(cache.x, dy, self.stride, self.padding, self.kernel)  # dW = Σ dy ⊗ x-patches
        db = dy.sum(axis=(0, 2, 3), dtype=accumulation_dtype(dy.dtype))  # db = Σ_{n,h,w} dy
        return {"weight": dw, "bias": db}


class TransposedConv2D:
    """y = convᵀ(x, W) + b, PyTorch's ConvTranspose2d.

    x: (N,C,H,W) -> y: (N,O,Ho,Wo) with Ho = (H−1)·S − 2P + K + output_padding;
    params W (C,O,K,K), b (O,). convᵀ with weight W is the input-gradient of a conv from O to
    C channels with the same W read as OIHW, so forward and backward swap the conv primitives.
    """

    def __init__(self, in_channels, out_channels, kernel=4, stride=2, padding=1, output_padding=0):
        if not 0 <= output_padding < stride:
            raise ValueError(f"output_padding must be in [0, stride), got {output_padding}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel, self.stride, self.padding = kernel, stride, padding
        self.output_padding = output_padding

    def init(self, key, dtype=jnp.float32):
        k = self.kernel
        fan_in, fan_out = self.in_channels * k * k, self.out_channels * k * k
        shape = (self.in_channels, self.out_channels, k, k)
        return {"weight": glorot_uniform(key, shape, fan_in, fan_out, dtype),
                "bias": jnp.zeros((self.out_channels,), dtype)}

    def output_shape(self, input_shape):
        n, _, h, w = input_shape
        size = lambda s: (s - 1) * self.stride - 2 * self.padding + self.kernel + self.output_padding
        return (n, self.out_channels, size(h), size(w))

    def forward(self, params, x):
        out_hw = self.output_shape(x.shape)[2:]
        y = conv2d_input_grad(x, params["weight"], self.stride, self.padding, out_hw)
        return y + params["bias"][None, :, None, None], ConvCache(x)

    def backward(self, params, cache, dy):
        x = cache.x
        dx = conv2d(dy, params["weight"], self.stride, self.padding)  # dx = conv(dy, W)
        dw = conv2d_weight_grad(dy, x, self.stride, self.padding, self.kernel)  # dW[c,o] = Σ x ⊗ dy-patches
        db = dy.sum(axis=(0, 2, 3), dtype=accumulation_dtype(dy.dtype))  # db = Σ_{n,h,w} dy
        return dx, {"weight": dw, "bias": db}
