"""Mixed precision: compute in bfloat16 (or float32), keep float32 master weights.

With ``compute_dtype`` bfloat16 the train step casts the float32 parameters and the batch to
bfloat16, runs the forward and the hand-written backward in bfloat16, and casts the gradients
back to float32 before clipping and AdamW, which update the float32 weights. Three places keep
float32 inside the bfloat16 pass: the ELBO (its sums run over 12,288 values per image), the
bias gradients (sums over batch and pixels, ``accumulation_dtype``) and everything after the
gradients. Matrix products and convolutions accumulate in float32 inside the GPU libraries and
round their outputs to bfloat16.
"""
import jax.numpy as jnp

COMPUTE_DTYPES = ("float32", "bfloat16")


def accumulation_dtype(dtype):
    """The dtype a sum over many ``dtype`` values accumulates in: at least float32."""
    return jnp.promote_types(dtype, jnp.float32)


def compute_dtype(name):
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"compute dtype must be one of {COMPUTE_DTYPES}, not {name!r}")
    return jnp.dtype(name)


def cast_tree(tree, dtype):
    """Every floating array of a dict cast to ``dtype``."""
    return {k: v.astype(dtype) for k, v in tree.items()}
