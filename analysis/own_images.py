"""Image files named on the command line, preprocessed as a checkpoint's training images were."""
from __future__ import annotations

import numpy as np

import imagedata
from imagedata import DataOptions
from imagedata.decoding import SQUARE, load_image
from model import Architecture


def checkpoint_crop(data: DataOptions, crop=None):
    """The crop a checkpoint's dataset used (``crop``, e.g. a --crop flag, wins); for generated
    datasets, which were never cropped, and unrecorded ones, the largest centred square."""
    if crop is not None:
        return imagedata.resolve_crop(data.dataset, crop)
    if data.dataset in imagedata.GENERATED or data.dataset is None:
        return SQUARE
    return data.crop


def load_files(paths, params, data: DataOptions, crop=None) -> np.ndarray:
    """uint8 (N, 3, S, S) of image files, S the model's image size; UserError naming a bad file."""
    size = Architecture.of(params).image_size
    crop = checkpoint_crop(data, crop)
    return np.stack([load_image(p, crop, size) for p in paths])
