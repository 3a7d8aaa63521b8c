"""A 1-D strided convolution worked on small integers, printed as the Markdown block of docs/derivations.md.

A 6-sample signal, a 4-tap kernel, stride 2 and padding 1 (the seed's K, S, P in one dimension)
give 3 output samples. The script writes the convolution as a 3x6 matrix, shows that its
transpose applied to an output gradient is the input gradient and equals a transposed
convolution's forward (each input sample scattering the kernel), and that the weight gradient
is a correlation of the padded input with the output gradient. Every number in that section
of the page is this script's output; ``--check`` also compares them with ``jax.vjp``.

    python benchmarks/conv1d_example.py           # the Markdown block
    python benchmarks/conv1d_example.py --check   # the same, after a jax.vjp cross-check
"""
import argparse

import numpy as np

X = np.array([3, 1, 4, 2, 5, 2])   # input signal, 6 samples
W = np.array([1, 2, -1, 3])        # kernel, 4 taps
DY = np.array([1, -2, 2])          # gradient of the loss in the 3 outputs
S, P = 2, 1                        # stride, padding


def output_size(n, k, s, p):
    return (n + 2 * p - k) // s + 1


def conv1d(x, w, s=S, p=P):
    """y[h] = sum_a x_pad[s*h + a] * w[a] (a correlation, as every deep-learning conv)."""
    x_pad = np.pad(x, p)
    return np.array([x_pad[s * h:s * h + len(w)] @ w for h in range(output_size(len(x), len(w), s, p))])


def conv_matrix(w, n, s=S, p=P):
    """A with y = A x: row h holds w at columns s*h - p ... s*h - p + K - 1 (those inside the signal)."""
    m = output_size(n, len(w), s, p)
    a = np.zeros((m, n), dtype=w.dtype)
    for h in range(m):
        for t in range(len(w)):
            i = s * h - p + t
            if 0 <= i < n:
                a[h, i] = w[t]
    return a


def transposed_conv1d(y, w, n, s=S, p=P):
    """PyTorch's ConvTranspose1d by its definition: sample h scatters y[h]*w into positions s*h - p + a."""
    full = np.zeros(s * (len(y) - 1) + len(w), dtype=y.dtype)
    for h in range(len(y)):
        full[s * h:s * h + len(w)] += y[h] * w
    return full[p:p + n]


def weight_grad(x, dy, k, s=S, p=P):
    """dw[a] = sum_h dy[h] * x_pad[s*h + a]: x_pad correlated with dy spread s apart."""
    x_pad = np.pad(x, p)
    return np.array([sum(dy[h] * x_pad[s * h + a] for h in range(len(dy))) for a in range(k)])


def dilate(v, s=S):
    """v with s - 1 zeros between neighbours."""
    out = np.zeros(s * (len(v) - 1) + 1, dtype=v.dtype)
    out[::s] = v
    return out


def row(v):
    return "[" + ", ".join(f"{int(e):3d}" for e in v) + "]"


def matrix(a):
    return "\n".join(row(r) for r in a)


def block():
    """The Markdown text (the lines between the page's markers)."""
    n, k = len(X), len(W)
    y = conv1d(X, W)
    a = conv_matrix(W, n)
    assert np.array_equal(a @ X, y)
    dx = a.T @ DY
    assert np.array_equal(dx, transposed_conv1d(DY, W, n))
    # dy dilated by S, padded by K-1-P (plus the input samples the stride never reached on the
    # high side), correlated with the flipped kernel: the lax form in model/conv.py
    uncovered = n + 2 * P - k - S * (len(DY) - 1)
    pads = (k - 1 - P, k - 1 - P + uncovered)
    dx_conv = np.correlate(np.pad(dilate(DY), pads), W[::-1], "valid")
    assert np.array_equal(dx, dx_conv)
    dw = weight_grad(X, DY, k)
    # dw[a] = dy . (dy/dw[a]): the matrix of unit kernel e_a, applied to x, dotted with dy
    dw_by_units = np.array([DY @ (conv_matrix(np.eye(k, dtype=int)[t], n) @ X) for t in range(k)])
    assert np.array_equal(dw, dw_by_units)
    x_pad = np.pad(X, P)
    dw_corr = np.correlate(x_pad, dilate(DY), "valid")[:k]
    assert np.array_equal(dw, dw_corr)
    lines = [
        f"Signal $x$ ({n} samples), kernel $w$ ({k} taps), stride $S={S}$, padding $P={P}$, so "
        f"$H_o = \\lfloor({n} + 2\\cdot{P} - {k})/{S}\\rfloor + 1 = {len(y)}$ outputs.",
        "",
        "```text",
        f"x      = {row(X)}",
        f"w      = {row(W)}",
        f"x_pad  = {row(x_pad)}        (one zero each side)",
        f"y      = {row(y)}                 y[h] = sum_a x_pad[2h+a] w[a]",
        "```",
        "",
        f"The convolution as a matrix, $y = A x$ ($A$ is {a.shape[0]}×{a.shape[1]}; row $h$ holds $w$ "
        f"starting at column $2h-1$, the taps that fall on the padding are dropped):",
        "",
        "```text",
        "A =",
        matrix(a),
        "",
        "A^T =",
        matrix(a.T),
        "```",
        "",
        "Input gradient for an output gradient $\\delta y$: $\\delta x = A^\\top \\delta y$. "
        "The same numbers come from a transposed convolution's forward, in which each "
        "$\\delta y[h]$ scatters $\\delta y[h]\\,w$ onto positions $2h-1 \\dots 2h+2$ and the "
        "positions outside $0 \\dots 5$ are cut off:",
        "",
        "```text",
        f"dy          = {row(DY)}",
        f"A^T dy      = {row(dx)}",
    ]
    full = np.zeros(S * (len(DY) - 1) + k, dtype=int)
    for h in range(len(DY)):
        part = np.zeros_like(full)
        part[S * h:S * h + k] = DY[h] * W
        full += part
        lines.append(f"{f'  dy[{h}]*w on {S * h - P}..{S * h - P + k - 1}:':<26}{row(part)}")
    lines += [
        f"{f'  sum on {-P}..{len(full) - 1 - P}:':<26}{row(full)}",
        f"{f'  cut to 0..{n - 1}:':<26}{row(full[P:P + n])}   = convT(dy, w)",
        f"dilated dy  = {row(dilate(DY))}          (S-1 = 1 zero between samples)",
        f"flip(w)     = {row(W[::-1])}",
        f"pad(dilated dy, {pads[0]} left, {pads[1]} right) correlated with flip(w)",
        f"            = {row(dx_conv)}   = A^T dy again",
        "```",
        "",
        "Weight gradient: $\\delta w[a] = \\sum_h \\delta y[h]\\, x_{pad}[2h+a]$, the padded input "
        "correlated with $\\delta y$ spread two samples apart; each tap meets the three input "
        "samples it multiplied in the forward:",
        "",
        "```text",
    ]
    for t in range(k):
        terms = " + ".join(f"({int(DY[h])})({int(x_pad[S * h + t])})" for h in range(len(DY)))
        lines.append(f"dw[{t}] = {terms} = {int(dw[t])}")
    lines += [
        f"dw    = {row(dw)}   = corr(x_pad, dilated dy)[0..{k - 1}]",
        f"db    = {int(DY.sum())}               (sum of dy, with a bias)",
        "```",
        "",
        "Space-to-depth (the idea of `model/fast_conv.py` in one dimension): cut $x_{pad}$ into "
        "blocks of two samples and the kernel into two taps of two; the stride-2 4-tap "
        "convolution becomes a stride-1 2-tap convolution over 2-channel blocks, with no zero "
        "multiplied:",
        "",
        "```text",
    ]
    blocks = x_pad.reshape(-1, S)
    w2 = W.reshape(-1, S)
    y2 = np.array([blocks[h] @ w2[0] + blocks[h + 1] @ w2[1] for h in range(len(y))])
    assert np.array_equal(y2, y)
    lines += [
        "X  = blocks of x_pad = " + ", ".join(row(b) for b in blocks),
        "w2 = taps of w       = " + ", ".join(row(t) for t in w2),
    ]
    for h in range(len(y)):
        first, second = int(blocks[h] @ w2[0]), int(blocks[h + 1] @ w2[1])
        lines.append(f"y[{h}] = X[{h}].w2[0] + X[{h + 1}].w2[1] = {first} + {second if second >= 0 else f'({second})'}"
                     f" = {int(y2[h])}")
    lines.append("```")
    return "\n".join(lines)


def check_with_jax():
    """The same gradients from jax.vjp of lax's 1-D convolution, in float64."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    with jax.enable_x64(True):  # scoped: a caller's setting is left as it was
        _check_with_jax(jax, jnp, lax)


def _check_with_jax(jax, jnp, lax):

    def f(x, w):
        return lax.conv_general_dilated(x[None, None, :], w[None, None, :], (S,), ((P, P),))[0, 0]

    x, w = jnp.asarray(X, jnp.float64), jnp.asarray(W, jnp.float64)
    y, vjp = jax.vjp(f, x, w)
    dx, dw = vjp(jnp.asarray(DY, jnp.float64))
    assert np.array_equal(np.asarray(y), conv1d(X, W)), "forward"
    assert np.array_equal(np.asarray(dx), conv_matrix(W, len(X)).T @ DY), "input gradient"
    assert np.array_equal(np.asarray(dw), weight_grad(X, DY, len(W))), "weight gradient"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="first compare the numbers with jax.vjp of lax.conv_general_dilated (float64)")
    args = parser.parse_args(argv)
    if args.check:
        check_with_jax()
    print(block())


if __name__ == "__main__":
    main()
