"""bvaex: a convolutional β-VAE whose every gradient is written by hand."""
from .architecture import Architecture
from .elbo import DEFAULT_BETA
from .model import (VAE, TrainHyperparams, TrainState, build, count_params, decode, encode, init_params,
                    init_state, loss_and_grads, reconstruct, to_float, train_step, vae_of)
from . import tensor_file
from .param_file import load_params, save_params
