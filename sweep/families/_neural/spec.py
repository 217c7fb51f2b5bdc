"""Spec fields shared by the neural families (read without importing torch)."""

from __future__ import annotations

from typing import Any

from sweep import fields
from sweep.families._neural.data import DataSpec, parse_data

DEVICES = ("auto", "cpu", "cuda")
COMMON_FIELDS = ("data", "latent_dim", "hidden", "batch_size", "lr", "warm_start", "eval_samples", "device")


def read_common(section: fields.Section, *, latent_dim: int, hidden: tuple[int, ...]) -> dict[str, Any]:
    """The fields every neural family has, with the family's defaults for the network size.

    ``lr`` is returned as None when absent (each family has its own default).
    """
    return {
        "data": section.take("data", parse_data, None) or parse_data("digits", section.sub("data")),
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
    }
