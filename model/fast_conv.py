"""Faster formulations of the convolution maps for 4×4 kernels, stride 2, padding 1.

Shape legend as in ``model/conv.py``: N batch, C conv input channels, O conv output channels,
H, W the conv input's height and width (both even), Ho = H/2, Wo = W/2, P = Ho + 1, Q = Wo + 1.
Arrays enter and leave in NCHW, weights in OIHW; the space-to-depth arrays are NHWC.

Space-to-depth. Write each tap a = 2i + r (i, r ∈ {0, 1}). The padded input x_pad (H+2 rows)
read as blocks of 2×2 pixels is X = s2d(x_pad): (N, P, Q, 4C), channel (r, s, c). Then

    y[n,o,h,w] = Σ_{c,a,b} x_pad[n,c,2h+a,2w+b] · w[o,c,a,b]
               = Σ_{i,j,k} X[n,h+i,w+j,k] · w2[i,j,k,o],      w2[i,j,(r,s,c),o] = w[o,c,2i+r,2j+s]

a stride-1 2×2 convolution with 4C input channels: no zero is multiplied and nothing is
dilated. Both gradients follow from that identity:

    dX[n,p,q,k]  = Σ_{i,j,o} dy[n,o,p−i,q−j] · w2[i,j,k,o]   a stride-1 "full" 2×2 conv of dy
    dw2[i,j,k,o] = Σ_{n,h,w} X[n,h+i,w+j,k] · dy[n,o,h,w]    GEMMs over shifted views of X

and dx is dX read back as pixels (depth-to-space) without its one-pixel border. The weight
gradient of the wide layers is taken tap by tap instead: 16 GEMMs, each over a stride-2 view
of x_pad, measured faster inside the whole step than one GEMM over a materialised copy.

Layers with 3 channels make GEMMs with a narrow dimension, which XLA:CPU runs poorly through
its convolution emitter; for them the maps are written as GEMMs over explicit patches
(im2col) and as a GEMM followed by an overlap-add of its 2×2 shifted blocks (col2im).
"""
import jax.numpy as jnp
from jax import lax

NARROW = 4  # at most this many channels on the pixel side: use the patch (im2col/col2im) GEMMs


def applies(kernel, stride, padding, input_hw, output_hw):
    """True when these formulations compute the conv with these hyperparameters and sizes."""
    return ((kernel, stride, padding) == (4, 2, 1) and all(s % 2 == 0 for s in input_hw)
            and tuple(output_hw) == tuple(s // 2 for s in input_hw))


def space_to_depth(x, layout="NCHW"):
    """x: (N,C,H,W) (or (N,H,W,C) for ``layout`` NHWC) -> X = s2d(pad(x, 1)): (N,P,Q,4C), channel
    order (r, s, c)."""
    if layout == "NHWC":
        n, h, w, c = x.shape
        x_pad = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))).reshape(n, h // 2 + 1, 2, w // 2 + 1, 2, c)
        return x_pad.transpose(0, 1, 3, 2, 4, 5).reshape(n, h // 2 + 1, w // 2 + 1, 4 * c)  # (n, p, q, r, s, c)
    n, c, h, w = x.shape
    x_pad = jnp.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    x_pad = x_pad.reshape(n, c, h // 2 + 1, 2, w // 2 + 1, 2)  # (n, c, p, r, q, s)
    return x_pad.transpose(0, 2, 4, 3, 5, 1).reshape(n, h // 2 + 1, w // 2 + 1, 4 * c)


def depth_to_space(dX, channels, layout="NCHW"):
    """The adjoint of ``space_to_depth``: dX (N,P,Q,4C) -> dx (N,C,2P−2,2Q−2), border dropped
    (or (N,2P−2,2Q−2,C) for ``layout`` NHWC)."""
    n, p, q, _ = dX.shape
    blocks = dX.reshape(n, p, q, 2, 2, channels)  # (n, p, q, r, s, c)
    if layout == "NHWC":
        return blocks.transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * p, 2 * q, channels)[:, 1:-1, 1:-1]
    dx_pad = blocks.transpose(0, 5, 1, 3, 2, 4).reshape(n, channels, 2 * p, 2 * q)
    return dx_pad[:, :, 1:-1, 1:-1]


def weight_to_s2d(w):
    """w: (O,C,4,4) -> w2: (2,2,4C,O), w2[i,j,(r,s,c),o] = w[o,c,2i+r,2j+s]."""
    o, c = w.shape[:2]
    return w.reshape(o, c, 2, 2, 2, 2).transpose(2, 4, 3, 5, 1, 0).reshape(2, 2, 4 * c, o)


def weight_from_s2d(w2, out_channels, in_channels):
    """The inverse of ``weight_to_s2d``: (2,2,4C,O) -> (O,C,4,4)."""
    w = w2.reshape(2, 2, 2, 2, in_channels, out_channels)  # (i, j, r, s, c, o)
    return w.transpose(5, 4, 0, 2, 1, 3).reshape(out_channels, in_channels, 4, 4)


def im2col(x):
    """x: (N,C,H,W) -> patches (N,Ho,Wo,16C), column order (i, j, r, s, c) as in ``weight_to_s2d``."""
    X = space_to_depth(x)
    ho, wo = X.shape[1] - 1, X.shape[2] - 1
    return jnp.concatenate([X[:, i:i + ho, j:j + wo] for i in (0, 1) for j in (0, 1)], axis=-1)


def forward_s2d(x, w, layout="NHWC"):
    """y = conv(x, w) as one stride-1 2×2 conv in space-to-depth form (the identity above).

    x: (N,C,H,W), w: (O,C,4,4) -> y: (N,O,Ho,Wo) (both NHWC for ``layout`` NHWC). For a narrow
    C it beats the strided conv: the 2×2 conv contracts 4C channels per tap instead of C.
    """
    y = lax.conv_general_dilated(space_to_depth(x, layout), weight_to_s2d(w), window_strides=(1, 1),
                                 padding=((0, 0), (0, 0)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y if layout == "NHWC" else y.transpose(0, 3, 1, 2)


def input_grad_s2d(dy, w, layout="NCHW"):
    """dx = convᵀ(dy, w) as one stride-1 2×2 conv in space-to-depth form.

    dy: (N,O,Ho,Wo), w: (O,C,4,4) -> dx: (N,C,H,W) (both NHWC for ``layout`` NHWC).
    dX = conv(pad(dy, 1), flip(w2)) with w2's channel roles swapped; dx = d2s(dX).
    """
    dy = dy.transpose(0, 2, 3, 1) if layout == "NCHW" else dy
    dX = lax.conv_general_dilated(dy, jnp.flip(weight_to_s2d(w), (0, 1)),
                                  window_strides=(1, 1), padding=((1, 1), (1, 1)),
                                  dimension_numbers=("NHWC", "HWOI", "NHWC"))  # (N,P,Q,4C)
    return depth_to_space(dX, w.shape[1], layout)


def input_grad_col2im(dy, w, layout="NCHW"):
    """dx = convᵀ(dy, w) as one GEMM and an overlap-add, for a narrow C.

    dy: (N,O,Ho,Wo), w: (O,C,4,4) -> dx: (N,C,H,W) (both NHWC for ``layout`` NHWC).
    cols = dy·W2ᵀ: (N,Ho,Wo,(i,j,k)); dX[p,q] = Σ_{i,j} cols[p−i,q−j,i,j]; dx = d2s(dX).
    """
    o, c = w.shape[:2]
    spec = "nohw,ok->nhwk" if layout == "NCHW" else "nhwo,ok->nhwk"
    cols = jnp.einsum(spec, dy, weight_to_s2d(w).reshape(-1, o).T)  # cols = dy·W2ᵀ
    n, ho, wo, _ = cols.shape
    cols = cols.reshape(n, ho, wo, 2, 2, 4 * c)
    dX = sum(jnp.pad(cols[:, :, :, i, j], ((0, 0), (i, 1 - i), (j, 1 - j), (0, 0)))  # overlap-add the 4 taps
             for i in (0, 1) for j in (0, 1))
    return depth_to_space(dX, c, layout)


def weight_grad_taps(x, dy):
    """dw as 16 GEMMs, one per tap, each over a stride-2 view of the padded input.

    x: (N,C,H,W), dy: (N,O,Ho,Wo) -> dw: (O,C,4,4).
    dw[:,:,a,b] = Σ_{n,h,w} dy[n,:,h,w] ⊗ x_pad[n,:,2h+a,2w+b]: no im2col is materialised, each
    GEMM reads a quarter of x_pad.
    """
    ho, wo = dy.shape[2:]
    x_pad = jnp.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    rows = [jnp.stack([jnp.einsum("nohw,nchw->oc", dy, x_pad[:, :, a:a + 2 * ho:2, b:b + 2 * wo:2])  # dW_ab = dyᵀ·x_ab
                       for b in range(4)], axis=-1) for a in range(4)]
    return jnp.stack(rows, axis=-2)


def weight_grad_im2col(x, dy):
    """dw as one GEMM over explicit patches, for a narrow C: dW2 = dyᵀ·patches.

    x: (N,C,H,W), dy: (N,O,Ho,Wo) -> dw: (O,C,4,4).
    """
    o, c = dy.shape[1], x.shape[1]
    dw2 = jnp.einsum("nohw,nhwk->ko", dy, im2col(x))  # (16C, O)
    return weight_from_s2d(dw2.reshape(2, 2, 4 * c, o), o, c)


def input_grad(dy, w, layout="NCHW"):
    """dy: (N,O,Ho,Wo), w: (O,C,4,4) -> dx: (N,C,H,W), the formulation chosen by channel count
    (activations in ``layout``)."""
    return input_grad_col2im(dy, w, layout) if w.shape[1] <= NARROW else input_grad_s2d(dy, w, layout)


def weight_grad(x, dy):
    """x: (N,C,H,W), dy: (N,O,Ho,Wo) -> dw: (O,C,4,4), the formulation chosen by channel count."""
    return weight_grad_im2col(x, dy) if x.shape[1] <= NARROW else weight_grad_taps(x, dy)
