"""Spec fields shared by the neural families (read without importing torch)."""

from __future__ import annotations

from typing import Any

from sweep import fields
from sweep.errors import SpecError
from sweep.families._neural.data import DataSpec, parse_data

DEVICES = ("auto", "cpu", "cuda")
ARCHITECTURES = ("mlp", "conv")
CHANNELS = (16, 32)  # conv: channels after each stride-2 convolution (28 -> 14 -> 7, 8 -> 4 -> 2)
COMMON_FIELDS = (
    "data",
    "latent_dim",
    "hidden",
    "batch_size",
    "lr",
    "warm_start",
    "eval_samples",
    "device",
    "architecture",
    "channels",
)


def read_common(section: fields.Section, *, latent_dim: int, hidden: tuple[int, ...]) -> dict[str, Any]:
    """The fields every neural family has, with the family's defaults for the network size.

    ``lr`` is returned as None when absent (each family has its own default). ``architecture:
    conv`` needs square images whose side 2^len(channels) divides (checked here, against the data).
    """
    data = section.take("data", parse_data, None) or parse_data("digits", section.sub("data"))
    architecture = section.take("architecture", fields.choice(*ARCHITECTURES), "mlp")
    if architecture == "mlp" and section.has("channels"):  # silently ignored, it would mislead
        raise SpecError(
            section.sub("channels"), "no channels (only architecture: conv takes them)", section.raw["channels"]
        )
    channels = section.take("channels", fields.listed(fields.integer(1, 4096)), CHANNELS)
    if architecture == "conv":
        from sweep.families._neural.data import load

        height, width = load(data).shape
        if not conv_fits((height, width), len(channels)):
            raise SpecError(
                section.sub("architecture"),
                f"mlp, or conv on square images whose side {1 << len(channels)} divides ({len(channels)} channels)",
                f"conv on {height}x{width} images",
                raw=True,
            )
    return {
        "data": data,
        "architecture": architecture,
        "channels": tuple(channels),
        "latent_dim": section.take("latent_dim", fields.integer(1, 4096), latent_dim),
        "hidden": section.take("hidden", fields.listed(fields.integer(1, 65536)), hidden),
        "batch_size": section.take("batch_size", fields.integer(1, 1 << 16), 64),
        "lr": section.take("lr", fields.number(0.0, 1.0, low_open=True), None),
        "warm_start": section.take("warm_start", fields.boolean, False),
        "eval_samples": section.take("eval_samples", fields.integer(64, 100_000), 1000),
        "device": section.take("device", fields.choice(*DEVICES), "auto"),
    }


def common_raw(spec: Any) -> dict[str, Any]:
    """The shared fields of a neural spec as plain data (``to_raw``)."""
    data: DataSpec = spec.data
    return {
        "data": data.to_raw(),
        "latent_dim": spec.latent_dim,
        "hidden": list(spec.hidden),
        "batch_size": spec.batch_size,
        "lr": spec.lr,
        "warm_start": spec.warm_start,
        "eval_samples": spec.eval_samples,
        "device": spec.device,
        # only when not the default: specs (and results folders) written before conv existed stay equal
        **({"architecture": spec.architecture, "channels": list(spec.channels)} if spec.architecture != "mlp" else {}),
    }


def conv_fits(shape: tuple[int, int], levels: int) -> bool:
    """Whether images of ``shape`` (H, W) go through ``levels`` stride-2 convolutions and back
    (each halves the side, each transposed one doubles it): square, side divisible by 2^levels."""
    height, width = shape
    return height == width and height % (1 << levels) == 0
