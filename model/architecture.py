"""The shape of the β-VAE, defined once: the seed's by default.

An ``Architecture`` says everything that fixes the parameter shapes: image channels, the encoder's
conv widths (the decoder mirrors them), the latent size and the image side. It is what a
checkpoint records under ``"model"``, and ``Architecture.of`` reads it back from the shapes of
a PyTorch-style state_dict (a parameter file that records nothing).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Architecture:
    in_channels: int = 3
    channels: tuple = (32, 64, 128)  # encoder conv widths; each conv halves the image side
    latent_dim: int = 128
    image_size: int = 64

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        sizes = {"in_channels": self.in_channels, "latent_dim": self.latent_dim, "image_size": self.image_size}
        for name, value in list(sizes.items()) + [("channels", c) for c in self.channels]:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive whole number, not {value!r}")
        if not self.channels:
            raise ValueError("channels must name at least one conv width")
        if self.image_size % 2 ** len(self.channels):
            raise ValueError(f"image_size {self.image_size} must be divisible by 2**{len(self.channels)} "
                             f"(one halving per conv layer)")

    @property
    def final_size(self) -> int:
        """Side of the last conv's feature map (8 for the seed's 64 px and three convs)."""
        return self.image_size // 2 ** len(self.channels)

    @property
    def flat_features(self) -> int:
        """Width of the flattened feature map the heads read and the decoder's fc writes (8192)."""
        return self.channels[-1] * self.final_size ** 2

    def as_dict(self) -> dict:
        return dict(asdict(self), channels=list(self.channels))

    @classmethod
    def of(cls, shapes) -> "Architecture":
        """The architecture whose parameters have these shapes ({name: array or shape}).

        Raises ValueError when the names are not those of this model's state_dict.
        """
        shape = {name: tuple(getattr(value, "shape", value)) for name, value in shapes.items()}
        channels = []
        while f"encoder.conv{len(channels) + 1}.weight" in shape:
            channels.append(shape[f"encoder.conv{len(channels) + 1}.weight"][0])
        if not channels or "encoder.fc_mu.weight" not in shape:
            raise ValueError("the parameters are not those of this model: no 'encoder.conv1.weight' or "
                             "'encoder.fc_mu.weight'")
        latent_dim, flat = shape["encoder.fc_mu.weight"]
        final_size = round((flat / channels[-1]) ** 0.5)
        if channels[-1] * final_size ** 2 != flat:
            raise ValueError(f"'encoder.fc_mu.weight' reads {flat} features, not a square map of "
                             f"{channels[-1]} channels")
        return cls(shape["encoder.conv1.weight"][1], tuple(channels), latent_dim, final_size * 2 ** len(channels))
