"""bvaex: a convolutional β-VAE whose every gradient is written by hand."""
from .checkpoint import latest_checkpoint, load_checkpoint, load_params, save_params
from .elbo import DEFAULT_BETA
from .model import (DEFAULT_ARCHITECTURE, TrainHyperparams, TrainState, architecture, backward,
                    count_params, decode, encode, forward, init_params, init_state, loss_and_grads,
                    reconstruct, to_float, train_step)
