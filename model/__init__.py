"""bvaex: a convolutional β-VAE whose every gradient is written by hand."""
from .checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, load_params, save_params
from .model import (DEFAULT_ARCHITECTURE, TrainHyperparams, TrainState, architecture, backward,
                    count_params, decode, encode, forward, init_params, init_state, loss_and_grads,
                    to_float, train_step)
