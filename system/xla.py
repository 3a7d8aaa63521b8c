"""XLA compiler options for the model's compiled functions, per backend, chosen by measurement.

On XLA:CPU, convolutions go to YNNPACK by default, which ran the seed model's strided
convolutions at about half the speed of XLA's own (Eigen) convolutions; YNNPACK stays the faster
choice for matrix products and reductions. So on the CPU the model's functions are compiled with
every YNNPACK fusion of the default except convolutions (``docs/speed.md`` has the numbers).

The options are per compiled function (``jax.jit(..., compiler_options=...)``), not process-wide
``XLA_FLAGS``, so nothing else in the process changes. An XLA build that does not know an option
is detected once, on a tiny function, and then gets none: the model runs, only slower.
``BVAEX_XLA_OPTIONS=none`` turns the options off.
"""
import functools
import os
import warnings

import jax
import jax.numpy as jnp
from jax import lax

OPTIONS = {
    "cpu": {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"},
}


@functools.lru_cache(maxsize=None)
def _accepted(backend, items):
    """Whether this XLA build compiles a small convolution with these options."""
    def probe(x, w):
        return lax.conv_general_dilated(x, w, (2, 2), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW"))
    try:
        device = jax.devices(backend)[0]
        x, w = (jax.device_put(jnp.zeros(shape), device) for shape in ((1, 2, 4, 4), (2, 2, 4, 4)))
        jax.jit(probe, compiler_options=dict(items)).lower(x, w).compile()
    except Exception as error:  # an unknown option or value: the XLA build differs from the measured one
        warnings.warn(f"XLA options {dict(items)} were not accepted on {backend} ({str(error).splitlines()[0]}); "
                      "compiling without them", RuntimeWarning, stacklevel=3)
        return False
    return True


def options(backend=None):
    """The compiler options for ``backend`` (default: JAX's default backend), or None."""
    if os.environ.get("BVAEX_XLA_OPTIONS", "auto") == "none":
        return None
    backend = backend or jax.default_backend()
    chosen = OPTIONS.get(backend)
    if not chosen:
        return None
    items = tuple(sorted(chosen.items()))
    return dict(items) if _accepted(backend, items) else None


class compiled:
    """``jax.jit(fun, **kwargs)`` with ``options()`` added, built at the first call.

    Deferring the build keeps importing the model from starting a backend (``jax.distributed``
    must be initialised first) and lets the backend in use pick the options. Called inside
    another traced function it is a plain ``jax.jit``: options belong to the outermost one.
    """

    def __init__(self, fun, **kwargs):
        functools.update_wrapper(self, fun)
        self._fun, self._kwargs, self._jitted = fun, kwargs, {}

    def _get(self, backend):
        if backend not in self._jitted:
            opts = options(backend) if backend else None
            kwargs = dict(self._kwargs, compiler_options=opts) if opts else self._kwargs
            self._jitted[backend] = jax.jit(self._fun, **kwargs)
        return self._jitted[backend]

    def __call__(self, *args, **kwargs):
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves((args, kwargs))):
            return self._get(None)(*args, **kwargs)  # inside another jit: its options apply
        return self._get(jax.default_backend())(*args, **kwargs)

    def lower(self, *args, **kwargs):
        return self._get(jax.default_backend()).lower(*args, **kwargs)


def fusion_boundary(a):
    """``a`` unchanged, but computed into a buffer of its own that XLA does not fuse through.

    XLA recomputes a cheap element-wise producer (a bias and ReLU) inside each of its consumers,
    even where a consumer then runs slower with it (``model.conv.weight_grad_input``). A
    conditional is a boundary that fusion does not cross. Its two branches return ``a`` bit for
    bit (negation is exact), so which one runs does not matter; they are written differently only
    so that XLA does not merge them and drop the conditional.
    """
    flat = a.reshape(-1)
    return lax.cond(flat[0] == flat[0], lambda v: v, lambda v: -(-v), a)
