"""Training: the run's configuration, its checkpoints, the devices it runs on, and the loop."""
from .config import PRESETS, TrainConfig
from .loop import train
from . import platform
