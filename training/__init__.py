"""Training: the run's record, its folder and checkpoints, the devices it runs on, and the loop."""
from . import devices
from .checkpoints import load_run
from .config import PRESETS, RunOptions, TrainConfig
from .loop import train
from .rundir import RunDir
