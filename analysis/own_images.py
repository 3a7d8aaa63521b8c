"""Image files named on the command line, preprocessed as a checkpoint's training images were."""
from __future__ import annotations

import numpy as np

import imagedata
from imagedata.decoding import SQUARE, load_image
from model import architecture


def checkpoint_crop(config: dict, crop=None):
    """The crop a checkpoint's dataset used (``crop``, e.g. a --crop flag, wins); for generated
    datasets, which were never cropped, the largest centred square."""
    data = config.get("data") if isinstance(config, dict) else None
    data = data if isinstance(data, dict) else {}
    dataset = data.get("dataset")
    if crop is None:
        if dataset in imagedata.GENERATED or dataset is None:
            return SQUARE
        crop = data.get("crop", imagedata.AUTO_CROP)
    return imagedata.resolve_crop(dataset, crop)


def load_files(paths, params, config: dict, crop=None) -> np.ndarray:
    """uint8 (N, 3, S, S) of image files, S the checkpoint's image size; UserError naming a bad file."""
    size = architecture(params)["image_size"]
    crop = checkpoint_crop(config, crop)
    return np.stack([load_image(p, crop, size) for p in paths])
