"""The β-VAE written as a user would write it for ``jax.grad``: plain lax ops, NCHW, no hand-written gradient.

The oracle every hand-written gradient is checked against (``tests/test_model.py``) and the
autodiff contender of ``benchmarks/train_step.py``. It shares no code with ``model/`` (its own
convolutions, reparameterisation and loss), so an error in the model cannot hide in both.
"""
import jax
import jax.numpy as jnp


def reference_loss(params, x, eps, beta):
    """The same loss written with plain lax ops, for jax.grad to differentiate independently."""
    dn = ("NCHW", "OIHW", "NCHW")
    h = x
    for i in (1, 2, 3):
        h = jax.lax.conv_general_dilated(h, params[f"encoder.conv{i}.weight"], (2, 2), ((1, 1), (1, 1)), dimension_numbers=dn)
        h = jax.nn.relu(h + params[f"encoder.conv{i}.bias"][None, :, None, None])
    h = h.reshape(h.shape[0], -1)
    mu = h @ params["encoder.fc_mu.weight"].T + params["encoder.fc_mu.bias"]
    logvar = h @ params["encoder.fc_logvar.weight"].T + params["encoder.fc_logvar.bias"]
    z = mu + jnp.exp(0.5 * logvar) * eps
    h = z @ params["decoder.fc.weight"].T + params["decoder.fc.bias"]
    c = params["decoder.deconv1.weight"].shape[0]
    s = int(round((h.shape[1] / c) ** 0.5))
    h = h.reshape(h.shape[0], c, s, s)
    for i in (1, 2, 3):
        w = params[f"decoder.deconv{i}.weight"]  # (in, out, k, k): ConvTranspose2d = gradient of a conv
        h = jax.lax.conv_transpose(h, w, (2, 2), ((2, 2), (2, 2)), dimension_numbers=("NCHW", "OIHW", "NCHW"),
                                   transpose_kernel=True)
        h = h + params[f"decoder.deconv{i}.bias"][None, :, None, None]
        h = jax.nn.sigmoid(h) if i == 3 else jax.nn.relu(h)
    recon = jnp.sum((h - x) ** 2) / x.shape[0]
    kl = -0.5 * jnp.sum(1 + logvar - mu ** 2 - jnp.exp(logvar)) / x.shape[0]
    return recon + beta * kl, (recon, kl)
