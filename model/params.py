"""Flat parameter dicts with PyTorch state_dict names ('encoder.conv1.weight', ...)."""


def sub(params, prefix):
    """The {'weight', 'bias'} of one layer out of the flat parameter dict."""
    return {"weight": params[prefix + ".weight"], "bias": params[prefix + ".bias"]}


def prefixed(prefix, layer_params):
    """The inverse of ``sub``: {'weight': w} -> {'<prefix>.weight': w}."""
    return {f"{prefix}.{k}": v for k, v in layer_params.items()}
