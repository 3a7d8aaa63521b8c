"""Per-layer timings of the formulations of the seed's 4×4, stride-2, padding-1 convolutions.

Every conv layer and its mirror transposed layer use the same three maps on the same shapes
(conv1/deconv3, conv2/deconv2, conv3/deconv1), so each map is timed once per shape:

    forward      y = conv(x, w)       conv forward, transposed-conv input gradient
    input grad   dx = convᵀ(dy, w)    conv input gradient, transposed-conv forward
    weight grad  dw                   both layers' weight gradients

Candidates: the model's own map (``model/conv.py``'s dispatch, in its layout and formulation:
marked ``*``), the generic lax convolutions (NCHW and NHWC), the space-to-depth stride-1 form,
the 4-phase split, GEMMs over patches (im2col) and GEMM + overlap-add (col2im), one GEMM with
four shifted copies of dy, and 16 per-tap GEMMs; and, when PyTorch is importable, its oneDNN
convolutions in NCHW and channels-last (``--no-torch`` to skip). Each candidate gets its operands
in its own layout (no transposes timed that the model would not make), is compiled with the
model's XLA options (``system/xla.py``), and is checked against the lax path first; the
repetitions are interleaved and the table gives medians. The row a layer loses by is the row to
work on: the whole step is ``benchmarks/train_step.py``.

Examples::

    python benchmarks/layers.py
    python benchmarks/layers.py --batch-size 512 --repeats 5
"""
import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # PyTorch's threads must not spin beside JAX's (train_step.py)
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


from model import fast_conv
from model.conv import (conv2d, conv2d_input_grad, conv2d_weight_grad, from_nchw, lax_conv2d_input_grad,
                        lax_conv2d_weight_grad, resolve_formulation, resolve_layout, spatial, to_nchw)
from system import cpu, heap, xla
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


def the_models(direction):
    """(map, NCHW -> its layout, its output -> NCHW, label): the model's own map, in the formulation
    and activation layout it resolves to on this backend."""
    formulation = resolve_formulation("auto")
    layout = resolve_layout("auto", formulation)
    maps = {"forward": lambda x, w: conv2d(x, w, 2, 1, layout, formulation),
            "input grad": lambda dy, w: conv2d_input_grad(dy, w, 2, 1, tuple(2 * s for s in spatial(dy.shape, layout)),
                                                          formulation, layout),
            "weight grad": lambda x, dy: conv2d_weight_grad(x, dy, 2, 1, 4, formulation, layout)}
    out = (lambda dw: dw) if direction == "weight grad" else (lambda y: to_nchw(y, layout))  # dw is OIHW always
    return maps[direction], lambda a: from_nchw(a, layout), out, f"the model's ({layout}, {formulation})"


def torch_candidates(direction):
    """{name: (memory format, map)} of PyTorch's maps (oneDNN on the CPU) in NCHW and channels-last,
    or none without PyTorch; the maps take tensors already in their memory format."""
    try:
        import torch
    except ImportError:
        return {}
    mask = {"forward": None, "input grad": [True, False, False], "weight grad": [False, True, False]}[direction]

    def run(a, b, memory_format):
        with torch.no_grad():
            if direction == "forward":
                return torch.nn.functional.conv2d(a, b, None, 2, 1)
            if direction == "input grad":  # a = dy, b = w; x only gives the shape
                x = torch.empty(a.shape[0], b.shape[1], 2 * a.shape[2], 2 * a.shape[3]).contiguous(
                    memory_format=memory_format)
                return torch.ops.aten.convolution_backward(a, x, b, None, [2, 2], [1, 1], [1, 1], False, [0, 0], 1,
                                                           mask)[0]
            w = torch.empty(b.shape[1], a.shape[1], 4, 4)  # a = x, b = dy; w only gives the shape
            return torch.ops.aten.convolution_backward(b, a, w, None, [2, 2], [1, 1], [1, 1], False, [0, 0], 1,
                                                       mask)[1]

    return {name: (fmt, lambda a, b, fmt=fmt: run(a, b, fmt))
            for name, fmt in (("PyTorch NCHW", torch.contiguous_format), ("PyTorch channels-last", torch.channels_last))}


def job(name, call, reference, to_nchw=lambda a: a, chosen=False):
    """A timed candidate: ``call()`` computes the map; its result is checked against ``reference`` first."""
    result = np.asarray(to_nchw(call()))
    error = float(np.max(np.abs(result - reference)) / np.max(np.abs(reference)))
    assert error < 1e-4, (name, error)
    return {"name": name, "call": call, "chosen": chosen, "times": []}


def candidates(direction, table, operands, with_torch=True):
    """Every timed job of one map: the model's own, the table's formulations, PyTorch's."""
    reference = np.asarray(jax.jit(table[next(iter(table))])(*operands))
    activations = len(operands) if direction == "weight grad" else 1  # the other operand is w, OIHW always
    f, inside, outside, label = the_models(direction)
    ours = xla.compiled(f)
    own = tuple(inside(a) if i < activations else a for i, a in enumerate(operands))
    jobs = [job(label, lambda: jax.block_until_ready(ours(*own)), reference, outside, chosen=True)]
    for name, formulation in table.items():
        compiled = xla.compiled(formulation)
        jobs.append(job(name, lambda compiled=compiled: jax.block_until_ready(compiled(*operands)), reference))
    for name, (memory_format, f) in (torch_candidates(direction) if with_torch else {}).items():
        import torch
        tensors = tuple(torch.from_numpy(np.array(a)).contiguous(memory_format=memory_format) if i < activations
                        else torch.from_numpy(np.array(a)) for i, a in enumerate(operands))
        jobs.append(job(name, lambda f=f, tensors=tensors: f(*tensors), reference, lambda t: t.contiguous().numpy()))
    return jobs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=64, help="images per call (default 64)")
    parser.add_argument("--repeats", type=int, default=9, help="timed calls of each candidate, interleaved")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even when it is importable")
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
            for entry in candidates(direction, table, operands, with_torch=not args.no_torch):
                jobs.append(dict(entry, layers=layers, direction=direction, flops=flops))
    a = jax.random.normal(jax.random.PRNGKey(0), (2048, 2048))
    matmul = jax.jit(lambda m: m @ m)
    matmul(a).block_until_ready()
    matmul_times = []
    for _ in range(args.repeats):
        for entry in jobs:
            start = time.perf_counter()
            entry["call"]()
            entry["times"].append(time.perf_counter() - start)
        start = time.perf_counter()
        matmul(a).block_until_ready()
        matmul_times.append(time.perf_counter() - start)
    peak = 2 * 2048 ** 3 / statistics.median(matmul_times) / 1e9
    print(f"CPU: {cpu.describe()}" if jax.default_backend() == "cpu" else f"device: {jax.devices()[0].device_kind}")
    print(f"batch {args.batch_size}, {args.repeats} interleaved repeats (medians); "
          f"float32 2048² matmul in this run: {peak:.1f} GFLOP/s; * = the model's own map")
    print()
    print("| layers | map | formulation | ms | GFLOP/s | % matmul |")
    print("|---|---|---|---|---|---|")
    for entry in jobs:
        seconds = statistics.median(entry["times"])
        gflops = entry["flops"] / seconds / 1e9
        mark = " *" if entry["chosen"] else ""
        print(f"| {entry['layers']} | {entry['direction']} | {entry['name']}{mark} | {1e3 * seconds:.1f} "
              f"| {gflops:.1f} | {100 * gflops / peak:.0f} % |")


if __name__ == "__main__":
    main()
