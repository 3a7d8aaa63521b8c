"""A training run's record: what it reads, the model, the step's hyperparameters, how it runs.

``TrainConfig`` is composed of parts each defined where it belongs: ``imagedata.DataOptions``,
``model.Architecture``, ``model.TrainHyperparams`` (β, AdamW's, clipping) and ``RunOptions``
below. It is what a checkpoint records (``as_dict``) and what ``--resume`` and every script read
back (``from_dict``); readers use attributes (``config.model.latent_dim``). Its defaults are the
seed's: CelebA, 100 epochs, batch 512, AdamW(1e-3, 0.9, 0.999, wd 0.01), β 0.5, latent 128.

Flags and old checkpoints speak in flat names (``lr``, ``latent_dim``, ``limit``): each belongs
to exactly one part, and ``from_flat``/``flat`` translate.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from imagedata import DataOptions
from model import Architecture, TrainHyperparams
from model.adamw import AdamWHyperparams
from system.errors import UserError

# What ``--dataset`` changes from the seed's settings when those flags are not given: for the
# embedded sets, a run of a few minutes on a 2-core CPU.
PRESETS = {
    "celeba": {},
    # the seed's lr, β and latent size; 960 steps of 32 reach recon ≈ 0.1 × the mean-image
    # baseline's (docs/faces.md)
    "faces": {"epochs": 3, "batch_size": 32, "limit": 10240, "val_images": 512},
    # small sprites on black: at 1e-3 the decoder settles on an all-black image within a few hundred
    # steps and stays there (recon ≈ 268, SSIM ≈ 0.92 for a picture of nothing); 3e-4 learns the sprites
    "shapes": {"epochs": 3, "batch_size": 32, "limit": 10240, "val_images": 512, "lr": 3e-4},
}
FORMAT = 2  # of the recorded config: {"format", "data", "model", "hparams", "run"}; before it, unversioned
# the optimiser's settings: a resumed run may change them (the history records the change)
OPTIMIZER_FIELDS = AdamWHyperparams._fields + ("clip_norm", "clip_value")
# what a resumed run may change; asking for another value of anything else is refused
RESUME_FIELDS = ("epochs", "compute_dtype", "log_every", "lr_schedule") + OPTIMIZER_FIELDS  # and max_steps
LR_SCHEDULES = ("constant", "cosine")
MOVABLE_FIELDS = ("data_dir", "cache_dir")  # where the same data lives may move between invocations


@dataclass(frozen=True)
class RunOptions:
    epochs: int = 100
    batch_size: int = 512
    max_steps: int | None = None  # per invocation: a resumed run is not bound by the first one's
    seed: int = 0                 # of initialisation, shuffling and sampling noise
    val_images: int = 2048        # scored after every epoch
    log_every: int = 10           # steps between reading metrics back from the device
    compute_dtype: str = "float32"
    lr_schedule: str = "constant"  # or "cosine": the learning rate decays to 0 over the run's steps


def _names(part) -> tuple:
    return TrainHyperparams.FLAT if part is TrainHyperparams else tuple(f.name for f in fields(part))


PARTS = {"data": DataOptions, "model": Architecture, "hparams": TrainHyperparams, "run": RunOptions}
PART_OF = {name: part for part, cls in PARTS.items() for name in _names(cls)}  # flat name -> part


@dataclass(frozen=True)
class TrainConfig:
    data: DataOptions = DataOptions()
    model: Architecture = Architecture()
    hparams: TrainHyperparams = TrainHyperparams()
    run: RunOptions = RunOptions()
    # the flat names set explicitly (on the command line): what a resumed run takes from the user
    explicit: frozenset = field(default=frozenset(), compare=False, repr=False)

    # ---------------------------------------------------------------- flat names

    @classmethod
    def from_flat(cls, explicit=frozenset(), **flat) -> "TrainConfig":
        """The defaults with the flat names given (unknown names: TypeError)."""
        unknown = set(flat) - set(PART_OF)
        if unknown:
            raise TypeError(f"unknown config names {sorted(unknown)}")
        grouped = {part: {k: v for k, v in flat.items() if PART_OF[k] == part} for part in PARTS}
        try:
            model = Architecture(**grouped["model"])
        except ValueError as e:  # e.g. more convs than halvings of the image side
            raise UserError(f"the architecture cannot be built: {e}; give other --channels.") from None
        return cls(data=DataOptions(**grouped["data"]), model=model,
                   hparams=TrainHyperparams.from_flat(**grouped["hparams"]), run=RunOptions(**grouped["run"]),
                   explicit=frozenset(explicit))

    def flat(self) -> dict:
        """{flat name: value} of every setting."""
        return {**asdict(self.data), **asdict(self.model), **self.hparams.flat(), **asdict(self.run)}

    def with_flat(self, **changes) -> "TrainConfig":
        """A copy with these flat names changed (the explicit set kept)."""
        return TrainConfig.from_flat(self.explicit, **(self.flat() | changes))

    @classmethod
    def for_dataset(cls, dataset=None, **given) -> "TrainConfig":
        """The seed's defaults, then the preset of ``dataset`` (the seed's CelebA when None), then
        ``given`` (flat names); what was given (``dataset`` included, when not None) is explicit."""
        explicit = frozenset(given) | ({"dataset"} if dataset is not None else set())
        dataset = dataset or DataOptions.dataset
        return cls.from_flat(explicit, **{**PRESETS.get(dataset, {}), "dataset": dataset, **given})

    # ---------------------------------------------------------------- the record a checkpoint keeps

    def as_dict(self) -> dict:
        """{'format', 'data', 'model', 'hparams', 'run'}: the JSON a checkpoint records."""
        return {"format": FORMAT, "data": self.data.as_dict(), "model": self.model.as_dict(),
                "hparams": self.hparams.flat(), "run": asdict(self.run)}

    @classmethod
    def from_dict(cls, config: dict) -> "TrainConfig":
        """The inverse of ``as_dict``; also reads the unversioned record before it ({'model', 'train',
        'data'}). Names it does not know are ignored, missing ones take the defaults."""
        if not isinstance(config, dict):
            raise UserError("the checkpoint's stored config is not a JSON object; resume from another checkpoint.")
        if not isinstance(config.get("format", 1), int) or config.get("format", 1) > FORMAT:
            raise UserError(f"the checkpoint's config has format {config.get('format')!r}, newer than this bvaex "
                            f"reads ({FORMAT}); update bvaex or pick another checkpoint.")
        flat = {}
        for section in ("data", "model", "hparams", "run", "train"):
            part = config.get(section) or {}
            flat.update({k: v for k, v in part.items() if k in PART_OF} if isinstance(part, dict) else {})
        if flat.get("compute_dtype") is None:  # checkpoints from before the option: float32
            flat.pop("compute_dtype", None)
        return cls.from_flat(**flat)

    # ---------------------------------------------------------------- resuming

    def step_hparams(self, total_steps: int) -> TrainHyperparams:
        """The train step's hyperparameters for a run of ``total_steps`` steps (its lr schedule applied)."""
        decay = total_steps if self.run.lr_schedule == "cosine" else None
        return self.hparams._replace(lr_decay_steps=decay)

    def resumed_from(self, saved: "TrainConfig", where) -> "TrainConfig":
        """``saved`` (a checkpoint's config) with what this request may change on resume: the
        ``RESUME_FIELDS`` and where the data lives (``MOVABLE_FIELDS``).

        Raises UserError when an explicit flag asks for another architecture, dataset, crop, image
        count, β, batch size, seed or validation size, which a resumed run cannot change.
        """
        mine, theirs = self.flat(), saved.flat()
        if any(name in self.explicit and mine[name] != theirs[name] for name in _names(Architecture)):
            raise UserError(f"The checkpoint in {where} is of another architecture ({saved.model}); "
                            f"resume with the same --channels/--latent-dim or use another --weights-dir.")
        free = RESUME_FIELDS + MOVABLE_FIELDS + ("max_steps",)
        fixed = [name for name in sorted(self.explicit) if name not in free and mine[name] != theirs[name]]
        if fixed:
            flags = ", ".join("--" + name.replace("_", "-") for name in fixed)
            raise UserError(f"{flags} cannot change when resuming (the checkpoint in {where} has "
                            f"{', '.join(f'{n} {theirs[n]}' for n in fixed)}); drop the flag or start "
                            f"a new run in another --weights-dir.")
        changes = {name: mine[name] for name in RESUME_FIELDS + MOVABLE_FIELDS if name in self.explicit}
        return saved.with_flat(max_steps=self.run.max_steps, **changes)
