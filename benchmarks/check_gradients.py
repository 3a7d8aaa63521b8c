"""Check each layer's hand-written backward against jax.vjp and central finite differences.

For a layer y = f(u) (u: its inputs and parameters) the script draws u and an output gradient
dy, calls the layer's own ``backward``, and prints, for every input and parameter, the relative
error ||g - g_ref|| / ||g_ref|| against two references in float64:

  vjp  jax.vjp(f, u)(dy)
  fd   (phi(u + h e_i) - phi(u - h e_i)) / 2h for every entry i, with phi(u) = <f(u), dy>

Clipping and AdamW have no backward: for them the code is compared with the formulas of
docs/derivations.md written again in NumPy ("formula"). The exit status is 1 when an error
exceeds its tolerance. Shapes are small: ``all`` takes seconds.

examples:
  python benchmarks/check_gradients.py all
  python benchmarks/check_gradients.py dense conv2d
  python benchmarks/check_gradients.py --perturb 1.001 relu    # a wrong backward: exits 1
"""
import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model import adamw  # noqa: E402
from model.activation import ReLU, Sigmoid  # noqa: E402
from model.architecture import Architecture  # noqa: E402
from model.clip import clip_by_global_norm, clip_by_value, global_norm  # noqa: E402
from model.conv import Conv2D, TransposedConv2D  # noqa: E402
from model.dense import Dense  # noqa: E402
from model.elbo import ELBO  # noqa: E402
from model.model import VAE  # noqa: E402
from model.reparameterize import Reparameterize  # noqa: E402

TOLERANCE = {"vjp": 1e-9, "fd": 1e-6, "formula": 1e-12}
FD_STEP = 1e-5
F64 = jnp.float64


def relative_error(got, expected):
    """||got - expected|| / ||expected|| over all entries (0 when both are zero)."""
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    if got.shape != expected.shape:  # a gradient must have its array's shape
        return float("inf")
    got, expected = got.ravel(), expected.ravel()
    denominator = np.linalg.norm(expected)
    difference = np.linalg.norm(got - expected)
    return 0.0 if difference == 0 else float(difference / denominator) if denominator else float("inf")


def finite_differences(f, args, dy, step=FD_STEP, chunk=128):
    """Central differences of phi(args) = <f(*args), dy> in every entry of every argument.

    The 2n evaluations of phi run as a few batched (vmapped) calls of ``chunk`` entries each.
    """
    flat, unravel = ravel_pytree(args)
    n = flat.shape[0]
    phi = jax.jit(jax.vmap(lambda v: jnp.vdot(f(*unravel(v)), dy)))
    chunk = min(chunk, n)
    grad = []
    for start in range(0, n, chunk):
        rows = np.arange(start, start + chunk)
        e = jnp.asarray((rows[:, None] == np.arange(n)[None, :]) * step)  # beyond n: all-zero rows
        grad.append((phi(flat + e) - phi(flat - e)) / (2 * step))
    return unravel(jnp.concatenate(grad)[:n])


def named_leaves(tree, prefix):
    """[(name, array)] of a dict of arrays (by key) or of one array."""
    if isinstance(tree, dict):
        return [(f"{prefix}{key}", tree[key]) for key in sorted(tree)]
    return [(prefix.rstrip("."), tree)]


def compare(names, got, references, perturb=1.0):
    """Rows (name, {reference: relative error}) of hand-written gradients against references.

    ``got`` and each reference are lists of arrays in the order of ``names``; ``perturb``
    multiplies every hand-written gradient (to see the check fail).
    """
    rows = []
    for i, name in enumerate(names):
        rows.append((name, {ref: relative_error(perturb * np.asarray(got[i]), arrays[i])
                            for ref, arrays in references.items()}))
    return rows


def check_backward(f, args, arg_names, backward, key, perturb):
    """Rows for a layer y = f(*args) whose ``backward(dy)`` returns gradients in the order of args."""
    y = jax.jit(f)(*args)
    dy = normal(key, y.shape)
    expected = jax.jit(lambda a, d: jax.vjp(f, *a)[1](d))(args, dy)  # one compilation, not one per op
    fd = finite_differences(f, args, dy)
    got = jax.jit(backward)(dy)
    names, got_l, vjp_l, fd_l = [], [], [], []
    for name, g, e, d in zip(arg_names, got, expected, fd):
        for (leaf_name, leaf), (_, e_leaf), (_, d_leaf) in zip(named_leaves(g, name), named_leaves(e, name),
                                                               named_leaves(d, name)):
            names.append(leaf_name)
            got_l.append(leaf)
            vjp_l.append(e_leaf)
            fd_l.append(d_leaf)
    return compare(names, got_l, {"vjp": vjp_l, "fd": fd_l}, perturb)


def normal(key, shape, scale=1.0):
    """Standard-normal float64 draws (NumPy on the host: no compilation per shape)."""
    seed = np.asarray(key).astype(np.uint32).ravel().tolist()
    return jnp.asarray(scale * np.random.default_rng(seed).normal(size=shape))


def uniform(key, shape):
    """Uniform [0, 1) float64 draws, as ``normal``."""
    return jnp.asarray(np.random.default_rng(np.asarray(key).astype(np.uint32).ravel().tolist()).uniform(size=shape))


def with_random_bias(params, key):
    return dict(params, bias=normal(key, params["bias"].shape))


def keys(seed, n):
    """n seeds for ``normal``, ``uniform`` and the layers' ``init``."""
    return [jnp.asarray([seed, i], jnp.uint32) for i in range(n)]


# ------------------------------------------------------------------ the checks, one per layer

def check_dense(perturb):
    k = keys(0, 3)
    layer = Dense(5, 3)
    params = with_random_bias(layer.init(k[0], F64), k[1])
    x = normal(k[2], (4, 5))
    _, cache = jax.jit(layer.forward)(params, x)
    return check_backward(lambda p, inp: layer.forward(p, inp)[0], (params, x), ("", "x"),
                          lambda dy: layer.backward(params, cache, dy)[::-1], k[0], perturb)


def away_from_zero(x, margin=0.1):
    """x moved at least ``margin`` away from 0 (so no finite difference straddles ReLU's kink)."""
    return jnp.sign(x) * (jnp.abs(x) + margin)


def check_activation(activation, scale, perturb):
    k = keys(1, 2)
    x = away_from_zero(normal(k[0], (3, 4, 5), scale))
    _, cache = jax.jit(activation.forward)(x)
    return check_backward(lambda inp: activation.forward(inp)[0], (x,), ("x",),
                          lambda dy: (activation.backward(cache, dy),), k[1], perturb)


def check_conv(layer_cls, input_shape, channels, formulation, perturb, kernel=4, stride=2, padding=1):
    k = keys(2, 3)
    c, o = channels
    layer = layer_cls(c, o, kernel, stride, padding, formulation=formulation)
    params = with_random_bias(layer.init(k[0], F64), k[1])
    x = normal(k[2], input_shape)
    _, cache = jax.jit(layer.forward)(params, x)
    return check_backward(lambda p, inp: layer.forward(p, inp)[0], (params, x), ("", "x"),
                          lambda dy: layer.backward(params, cache, dy)[::-1], k[0], perturb)


def check_conv2d(perturb):
    # the model's hyperparameters on odd sizes (lax forms), and stride 3 without padding
    return (check_conv(Conv2D, (2, 2, 7, 5), (2, 3), "lax", perturb)
            + [(f"K3S3P0 {name}", e) for name, e in
               check_conv(Conv2D, (1, 2, 9, 7), (2, 2), "lax", perturb, 3, 3, 0)])


def check_conv_transpose(perturb):
    return check_conv(TransposedConv2D, (2, 3, 3, 4), (3, 2), "lax", perturb)


def check_fast_conv(perturb):
    """The fast formulations: narrow (im2col/col2im) and wide (space-to-depth, tap GEMMs) channels."""
    rows = []
    for label, layer_cls, shape, channels in (("conv narrow", Conv2D, (2, 3, 6, 6), (3, 5)),
                                              ("conv wide", Conv2D, (1, 6, 4, 4), (6, 2)),
                                              ("deconv narrow", TransposedConv2D, (2, 5, 3, 3), (5, 3)),
                                              ("deconv wide", TransposedConv2D, (1, 2, 2, 2), (2, 6))):
        rows += [(f"{label} {name}", e) for name, e in check_conv(layer_cls, shape, channels, "fast", perturb)]
    return rows


def check_reparameterize(perturb):
    k = keys(3, 4)
    mu, logvar, eps = normal(k[0], (4, 6)), normal(k[1], (4, 6)), normal(k[2], (4, 6))
    _, cache = jax.jit(Reparameterize.forward)(mu, logvar, eps)
    return check_backward(lambda m, lv: Reparameterize.forward(m, lv, eps)[0], (mu, logvar), ("mu", "logvar"),
                          lambda dz: Reparameterize.backward(cache, dz), k[3], perturb)


def check_elbo(perturb):
    k = keys(4, 5)
    x = uniform(k[0], (3, 2, 4, 5))
    x_hat = uniform(k[1], (3, 2, 4, 5))
    mu, logvar = normal(k[2], (3, 7)), normal(k[3], (3, 7))
    elbo = ELBO(beta=0.7)
    _, cache = elbo.forward(x_hat, x, mu, logvar)
    return check_backward(lambda xh, m, lv: elbo.forward(xh, x, m, lv)[0]["loss"], (x_hat, mu, logvar),
                          ("x_hat", "mu", "logvar"), lambda dloss: elbo.backward(cache, dloss), k[4], perturb)


def check_model(perturb):
    """The whole model's backward (every layer, the forks) on a tiny architecture."""
    vae = VAE(Architecture(3, (2, 3, 4), 3, 8), conv="lax", layout="NCHW")  # forward takes NCHW then
    k = keys(5, 3)
    params = {name: p.astype(F64) + 0.05 * normal(np.asarray([5, i]), p.shape)  # nonzero biases
              for i, (name, p) in enumerate(sorted(vae.init(k[0]).items()))}
    x = uniform(k[1], (2, 3, 8, 8))
    eps = normal(k[2], (2, 3))
    elbo = ELBO(beta=0.5)

    def loss(p):
        x_hat, mu, logvar, _ = vae.forward(p, x, eps)
        return elbo.forward(x_hat, x, mu, logvar)[0]["loss"]

    def backward(dloss):
        _, grads = vae.loss_and_grads(params, x, eps, 0.5)
        return ({name: dloss * g for name, g in grads.items()},)

    return check_backward(loss, (params,), ("",), backward, k[0], perturb)


def check_clip(perturb):
    k = keys(6, 2)
    grads = {"a": normal(k[0], (3, 4)), "b": normal(k[1], (5,))}
    flat = np.concatenate([np.asarray(g).ravel() for g in grads.values()])
    norm = np.sqrt(np.sum(flat ** 2))
    rows = compare(["global_norm"], [global_norm(grads)], {"formula": [norm]}, perturb)
    for limit in (0.5 * norm, 2 * norm):  # active, and inactive (nothing changes)
        clipped = clip_by_global_norm(grads, limit)
        scale = min(1.0, limit / norm)
        rows += compare([f"clip_by_global_norm {name} (c={limit / norm:.1f}|g|)" for name in sorted(grads)],
                        [clipped[name] for name in sorted(grads)],
                        {"formula": [scale * np.asarray(grads[name]) for name in sorted(grads)]}, perturb)
    clipped = clip_by_value(grads, 0.5)
    rows += compare([f"clip_by_value {name}" for name in sorted(grads)], [clipped[name] for name in sorted(grads)],
                    {"formula": [np.clip(np.asarray(grads[name]), -0.5, 0.5) for name in sorted(grads)]}, perturb)
    return rows


def check_adamw(perturb):
    rng = np.random.default_rng(7)
    params = {"w.weight": rng.normal(size=(3, 4)), "w.bias": rng.normal(size=(4,))}
    hp = adamw.AdamWHyperparams(lr=0.01, b1=0.8, b2=0.95, eps=1e-6, weight_decay=0.1)
    ours, state = {k: jnp.asarray(v) for k, v in params.items()}, adamw.init({k: jnp.asarray(v) for k, v in params.items()})
    ref = {k: v.copy() for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v2 = {k: np.zeros_like(v) for k, v in params.items()}
    for t in range(1, 4):
        g = {k: rng.normal(size=v.shape) for k, v in params.items()}
        ours, state = adamw.update(ours, {k: jnp.asarray(x) for k, x in g.items()}, state, hp)
        for k in ref:
            m[k] = hp.b1 * m[k] + (1 - hp.b1) * g[k]
            v2[k] = hp.b2 * v2[k] + (1 - hp.b2) * g[k] ** 2
            m_hat, v_hat = m[k] / (1 - hp.b1 ** t), v2[k] / (1 - hp.b2 ** t)
            decay = hp.weight_decay * ref[k] if not k.endswith(".bias") else 0.0
            ref[k] = ref[k] - hp.lr * (m_hat / (np.sqrt(v_hat) + hp.eps) + decay)
    names = sorted(ref)
    return compare([f"{name} after 3 steps" for name in names], [ours[n] for n in names],
                   {"formula": [ref[n] for n in names]}, perturb)


CHECKS = {
    "dense": check_dense,
    "relu": lambda perturb: check_activation(ReLU, 1.0, perturb),
    "sigmoid": lambda perturb: check_activation(Sigmoid, 3.0, perturb),
    "conv2d": check_conv2d,
    "conv_transpose": check_conv_transpose,
    "fast_conv": check_fast_conv,
    "reparameterize": check_reparameterize,
    "elbo": check_elbo,
    "clip": check_clip,
    "adamw": check_adamw,
    "model": check_model,
}


def run(names, perturb=1.0, out=sys.stdout):
    """Run the named checks, print their table; True when every error is within tolerance."""
    ok = True
    for name in names:
        print(f"{name}", file=out)
        for label, errors in CHECKS[name](perturb):
            cells = []
            for ref, error in errors.items():
                passed = error <= TOLERANCE[ref]
                ok &= passed
                cells.append(f"{ref} {error:9.2e}{'' if passed else ' FAIL'}")
            print(f"  {label:<40} " + "   ".join(cells), file=out)
    print("all within tolerance" if ok else "some gradients exceed their tolerance", file=out)
    return ok


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]) + "\n\ntolerances: "
        + ", ".join(f"{k} {v:g}" for k, v in TOLERANCE.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("layers", nargs="+", choices=list(CHECKS) + ["all"], metavar="LAYER",
                        help="one or more of: " + ", ".join(CHECKS) + "; or all")
    parser.add_argument("--perturb", type=float, default=1.0, metavar="F",
                        help="multiply every hand-written gradient by F (e.g. 1.001) to see the check fail")
    args = parser.parse_args(argv)
    names = list(CHECKS) if "all" in args.layers else list(dict.fromkeys(args.layers))
    jax.config.update("jax_enable_x64", True)  # here, not at import: importing it changes nothing
    return 0 if run(names, args.perturb) else 1


if __name__ == "__main__":
    sys.exit(main())
