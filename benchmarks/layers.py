"""Per-layer timings of the formulations of the seed's 4×4, stride-2, padding-1 convolutions.

Every conv layer and its mirror transposed layer use the same three maps on the same shapes
(conv1/deconv3, conv2/deconv2, conv3/deconv1), so each map is timed once per shape:

    forward      y = conv(x, w)       conv forward, transposed-conv input gradient
    input grad   dx = convᵀ(dy, w)    conv input gradient, transposed-conv forward
    weight grad  dw                   both layers' weight gradients

Candidates: the generic lax convolutions (NCHW and NHWC), the space-to-depth stride-1 form, the
4-phase split, GEMMs over patches (im2col) and GEMM + overlap-add (col2im), one GEMM with four
shifted copies of dy, and 16 per-tap GEMMs. Each is jitted alone with NCHW arrays in and out,
the repetitions interleaved; the table gives medians and marks the formulation that
``model/fast_conv.py`` uses (``*``). All candidates are checked against the lax path first.

Examples::

    python benchmarks/layers.py
    python benchmarks/layers.py --batch-size 512 --repeats 5
"""
import argparse
import statistics
import time

import jax
import jax.numpy as jnp
from jax import lax


from model import fast_conv
from system import heap
from model.conv import conv2d, lax_conv2d_input_grad, lax_conv2d_weight_grad
from model.fast_conv import depth_to_space, im2col, space_to_depth, weight_from_s2d, weight_to_s2d

# (layers, conv input channels C, conv output channels O, conv input size H)
SHAPES = [("conv1 / deconv3", 3, 32, 64), ("conv2 / deconv2", 32, 64, 32), ("conv3 / deconv1", 64, 128, 16)]


def forward_nhwc(x, w):
    y = lax.conv_general_dilated(x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0), (2, 2), ((1, 1), (1, 1)),
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y.transpose(0, 3, 1, 2)


def forward_s2d(x, w):
    y = lax.conv_general_dilated(space_to_depth(x), weight_to_s2d(w), (1, 1), "VALID",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y.transpose(0, 3, 1, 2)


def forward_im2col(x, w):
    return jnp.einsum("nhwk,ko->nohw", im2col(x), weight_to_s2d(w).reshape(-1, w.shape[0]))


def input_grad_phases(dy, w):
    """Four stride-1 2×2 convs, one per output phase (r, s), interleaved by depth-to-space."""
    c = w.shape[1]
    taps = jnp.flip(weight_to_s2d(w), (0, 1)).reshape(2, 2, 2, 2, c, -1)  # (i, j, r, s, c, o)
    d = dy.transpose(0, 2, 3, 1)
    phases = [lax.conv_general_dilated(d, taps[:, :, r, s], (1, 1), ((1, 1), (1, 1)),
                                       dimension_numbers=("NHWC", "HWOI", "NHWC")) for r in (0, 1) for s in (0, 1)]
    dX = jnp.stack(phases, axis=3)
    return depth_to_space(dX.reshape(*dX.shape[:3], -1), c)


def weight_grad_shifted_gemm(x, dy):
    """One GEMM of s2d(x_pad) with the four shifted copies of dy: dW2 = Dᵀ·X."""
    X = space_to_depth(x)
    o, c = dy.shape[1], x.shape[1]
    D = jnp.stack([jnp.pad(dy, ((0, 0), (0, 0), (i, 1 - i), (j, 1 - j))) for i in (0, 1) for j in (0, 1)], axis=1)
    return weight_from_s2d(jnp.einsum("ntopq,npqk->tko", D, X).reshape(2, 2, 4 * c, o), o, c)


FORWARD = {"lax NCHW": lambda x, w: conv2d(x, w, 2, 1), "lax NHWC": forward_nhwc,
           "space-to-depth": forward_s2d, "im2col GEMM": forward_im2col}
INPUT_GRAD = {"lax (lhs-dilated)": lambda dy, w: lax_conv2d_input_grad(dy, w, 2, 1, (2 * dy.shape[2], 2 * dy.shape[3])),
              "space-to-depth": fast_conv.input_grad_s2d, "4 phases": input_grad_phases,
              "GEMM + col2im": fast_conv.input_grad_col2im}
WEIGHT_GRAD = {"lax (rhs-dilated)": lambda x, dy: lax_conv2d_weight_grad(x, dy, 2, 1, 4),
               "16 tap GEMMs": fast_conv.weight_grad_taps, "shifted-dy GEMM": weight_grad_shifted_gemm,
               "im2col GEMM": fast_conv.weight_grad_im2col}


def chosen(direction, c):
    """The candidate that ``model/conv.py`` dispatches to for a conv with C input channels."""
    narrow = c <= fast_conv.NARROW
    return {"forward": FORWARD["lax NCHW"],
            "input grad": fast_conv.input_grad_col2im if narrow else fast_conv.input_grad_s2d,
            "weight grad": fast_conv.weight_grad_im2col if narrow else fast_conv.weight_grad_taps}[direction]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=64, help="images per call (default 64)")
    parser.add_argument("--repeats", type=int, default=9, help="timed calls of each candidate, interleaved")
    args = parser.parse_args()
    heap.keep_freed_memory()  # before the first computation (system/heap.py)

    jobs = []
    for layers, c, o, h in SHAPES:
        kx, kw, ky = jax.random.split(jax.random.PRNGKey(h), 3)
        x = jax.random.normal(kx, (args.batch_size, c, h, h))
        w = jax.random.normal(kw, (o, c, 4, 4))
        dy = jax.random.normal(ky, (args.batch_size, o, h // 2, h // 2))
        flops = 2 * args.batch_size * c * o * 16 * (h // 2) ** 2
        for direction, table, operands in (("forward", FORWARD, (x, w)), ("input grad", INPUT_GRAD, (dy, w)),
                                           ("weight grad", WEIGHT_GRAD, (x, dy))):
            reference = jax.jit(table[next(iter(table))])(*operands)
            for name, formulation in table.items():
                f = jax.jit(formulation)
                error = float(jnp.max(jnp.abs(f(*operands) - reference)) / jnp.max(jnp.abs(reference)))
                assert error < 1e-4, (layers, direction, name, error)
                jobs.append({"layers": layers, "direction": direction, "name": name, "f": f, "args": operands,
                             "flops": flops, "chosen": formulation is chosen(direction, c), "times": []})
    a = jax.random.normal(jax.random.PRNGKey(0), (2048, 2048))
    matmul = jax.jit(lambda m: m @ m)
    matmul(a).block_until_ready()
    matmul_times = []
    for _ in range(args.repeats):
        for job in jobs:
            start = time.perf_counter()
            jax.block_until_ready(job["f"](*job["args"]))
            job["times"].append(time.perf_counter() - start)
        start = time.perf_counter()
        matmul(a).block_until_ready()
        matmul_times.append(time.perf_counter() - start)
    peak = 2 * 2048 ** 3 / statistics.median(matmul_times) / 1e9
    print(f"batch {args.batch_size}, {args.repeats} interleaved repeats (medians); "
          f"float32 2048² matmul in this run: {peak:.1f} GFLOP/s; * = the model's choice")
    print()
    print("| layers | map | formulation | ms | GFLOP/s | % matmul |")
    print("|---|---|---|---|---|---|")
    for job in jobs:
        seconds = statistics.median(job["times"])
        gflops = job["flops"] / seconds / 1e9
        mark = " *" if job["chosen"] else ""
        print(f"| {job['layers']} | {job['direction']} | {job['name']}{mark} | {1e3 * seconds:.1f} | {gflops:.1f} "
              f"| {100 * gflops / peak:.0f} % |")


if __name__ == "__main__":
    main()
