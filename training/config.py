"""A training run's configuration: the seed's defaults, per-dataset presets resolved once.

``TrainConfig`` is what a checkpoint records (``as_dict``, the JSON of ``params.npz``) and what
``--resume`` reads back (``from_dict``). Its defaults are the seed's: CelebA, 100 epochs, batch
512, AdamW(1e-3, 0.9, 0.999, wd 0.01), β 0.5, latent 128.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

import imagedata
from imagedata.decoding import DEFAULT_CROP
from model import DEFAULT_ARCHITECTURE, DEFAULT_BETA
from system.errors import UserError

# What ``--dataset`` changes from the seed's settings when those flags are not given: for the
# embedded sets, a run of a few minutes on a 2-core CPU.
PRESETS = {
    "celeba": {},
    # the seed's lr, β and latent size; 960 steps of 32, about 2.5-3.5 minutes on 2 CPU cores, reach
    # recon ≈ 0.1 × the mean-image baseline's (docs/faces.md)
    "faces": {"epochs": 3, "batch_size": 32, "limit": 10240, "val_images": 512},
    # small sprites on black: at 1e-3 the decoder settles on an all-black image within a few hundred
    # steps and stays there (recon ≈ 268, SSIM ≈ 0.92 for a picture of nothing); 3e-4 learns the sprites
    "shapes": {"epochs": 3, "batch_size": 32, "limit": 10240, "val_images": 512, "lr": 3e-4},
}
MODEL_FIELDS = ("in_channels", "channels", "latent_dim", "image_size")
DATA_FIELDS = ("dataset", "data_dir", "crop", "cache_dir", "limit", "split_file")
# the optimiser's settings: a resumed run may change them (the history records the change)
OPTIMIZER_FIELDS = ("lr", "b1", "b2", "eps", "weight_decay", "clip_norm", "clip_value")
# what a resumed run may change; asking for another value of anything else is refused
RESUME_FIELDS = ("epochs", "compute_dtype", "log_every") + OPTIMIZER_FIELDS  # and max_steps (per invocation)


@dataclass(frozen=True)
class TrainConfig:
    # data
    dataset: str = "celeba"
    data_dir: str | None = None
    crop: int | str | None = DEFAULT_CROP  # "square": the largest centred square (--dataset folder)
    cache_dir: str | None = None
    limit: int | None = None
    split_file: str | None = None  # --dataset folder only
    # model
    in_channels: int = DEFAULT_ARCHITECTURE["in_channels"]
    channels: tuple = DEFAULT_ARCHITECTURE["channels"]
    latent_dim: int = DEFAULT_ARCHITECTURE["latent_dim"]
    image_size: int = DEFAULT_ARCHITECTURE["image_size"]
    # run
    epochs: int = 100
    batch_size: int = 512
    max_steps: int | None = None
    seed: int = 0
    val_images: int = 2048
    log_every: int = 10
    compute_dtype: str = "float32"
    # objective and optimiser
    beta: float = DEFAULT_BETA
    lr: float = 1e-3
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.01
    clip_norm: float | None = None
    clip_value: float | None = None
    # the names set explicitly (on the command line): what a resumed run takes from the user
    explicit: frozenset = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def for_dataset(cls, dataset=None, **given) -> "TrainConfig":
        """The seed's defaults, then the preset of ``dataset`` (the seed's CelebA when None), then
        ``given``; what was given (``dataset`` included, when not None) is recorded as explicit."""
        given = dict(given, channels=tuple(given["channels"])) if "channels" in given else given
        explicit = frozenset(given) | ({"dataset"} if dataset is not None else set())
        dataset = dataset or cls.dataset
        crop = {"crop": imagedata.resolve_crop(dataset, imagedata.AUTO_CROP)}  # the dataset's own default
        return cls(**{**crop, **PRESETS.get(dataset, {}), "dataset": dataset, **given}, explicit=explicit)

    def architecture(self) -> dict:
        return {name: getattr(self, name) for name in MODEL_FIELDS}

    def hyperparams(self) -> dict:
        """The keyword arguments of ``model.init_state`` (clipping off is an infinite threshold)."""
        inf = float("inf")
        return dict(beta=self.beta, lr=self.lr, b1=self.b1, b2=self.b2, eps=self.eps,
                    weight_decay=self.weight_decay, clip_norm=inf if self.clip_norm is None else self.clip_norm,
                    clip_value=inf if self.clip_value is None else self.clip_value)

    def as_dict(self) -> dict:
        """{'model', 'train', 'data'}: the JSON a checkpoint records."""
        values = {k: v for k, v in asdict(self).items() if k != "explicit"}
        model = {k: values.pop(k) for k in MODEL_FIELDS}
        model["channels"] = list(model["channels"])
        data = {k: values.pop(k) for k in DATA_FIELDS}
        return {"model": model, "train": values, "data": data}

    @classmethod
    def from_dict(cls, config: dict) -> "TrainConfig":
        """The inverse of ``as_dict``; keys it does not know are ignored, missing ones take the defaults."""
        if not isinstance(config, dict):
            raise UserError("the checkpoint's stored config is not a JSON object; resume from another checkpoint.")
        known = {f.name for f in fields(cls)} - {"explicit"}
        flat = {}
        for section in ("model", "train", "data"):
            part = config.get(section) or {}
            flat.update({k: v for k, v in part.items() if k in known})
        if flat.get("compute_dtype") is None:  # checkpoints from before the option: float32
            flat.pop("compute_dtype", None)
        if "channels" in flat:
            flat["channels"] = tuple(flat["channels"])
        return cls(**flat)

    def resumed_from(self, saved: "TrainConfig", where) -> "TrainConfig":
        """``saved`` (a checkpoint's config) with what this request may change on resume: the
        ``RESUME_FIELDS`` and where the data lives (``data_dir``, ``cache_dir``).

        Raises UserError when an explicit flag asks for another architecture, dataset, crop, image
        count, β, batch size, seed or validation size, which a resumed run cannot change.
        """
        for name in MODEL_FIELDS:
            if name in self.explicit and getattr(self, name) != getattr(saved, name):
                raise UserError(f"The checkpoint in {where} is of another architecture ({saved.architecture()}); "
                                f"resume with the same --channels/--latent-dim or use another --weights-dir.")
        free = RESUME_FIELDS + ("data_dir", "cache_dir", "max_steps")  # where the same data lives may move
        fixed = [name for name in sorted(self.explicit) if name not in free
                 and getattr(self, name) != getattr(saved, name)]
        if fixed:
            flags = ", ".join("--" + name.replace("_", "-") for name in fixed)
            raise UserError(f"{flags} cannot change when resuming (the checkpoint in {where} has "
                            f"{', '.join(f'{n} {getattr(saved, n)}' for n in fixed)}); drop the flag or start "
                            f"a new run in another --weights-dir.")
        moved = {name: getattr(self, name) for name in ("data_dir", "cache_dir") if name in self.explicit}
        changes = {name: getattr(self, name) for name in RESUME_FIELDS if name in self.explicit} | moved
        return replace(saved, max_steps=self.max_steps, **changes)
