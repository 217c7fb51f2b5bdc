"""A pretrained Hugging Face causal language model from a local folder (the optional ``.[lm]``
extra): ``model: {path: DIR}`` in the transformer family's spec, e.g. OPT-125m downloaded by the
user. Nothing is ever fetched from the hub: the folder must hold ``config.json`` and the weights
(``from_pretrained(DIR, local_files_only=True)``).

The folder is checked when the spec is read, without importing ``transformers``; the library is
needed only when chains run.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweep.errors import SpecError


@dataclass(frozen=True)
class HFModel:
    """A local model folder (absolute path) and the SHA-256 of its config.json."""

    path: str
    config_sha256: str

    def to_raw(self) -> dict[str, Any]:
        return {"path": self.path, "config_sha256": self.config_sha256}


def parse_model(value: Any, path: str) -> HFModel:
    """Read ``model: {path: DIR}`` (or the resolved form sweep.json records)."""
    if not isinstance(value, dict) or "path" not in value or set(value) - {"path", "config_sha256"}:
        raise SpecError(path, "{path: DIR}, a local folder holding a Hugging Face causal LM", value)
    folder = value["path"]
    if not isinstance(folder, str) or not folder:
        raise SpecError(f"{path}.path", "a local model folder", folder)
    resolved = Path(folder).expanduser().resolve()
    if not resolved.is_dir():
        raise SpecError(f"{path}.path", "a local Hugging Face model folder",
                        f"'{folder}' ({'a file' if resolved.exists() else 'no such folder'})", raw=True)
    config = resolved / "config.json"
    if not config.is_file():
        raise SpecError(f"{path}.path", "a Hugging Face model folder with a config.json",
                        f"'{folder}' (no config.json)", raw=True)
    digest = hashlib.sha256(config.read_bytes()).hexdigest()
    if "config_sha256" in value and value["config_sha256"] != digest:
        raise SpecError(f"{path}.config_sha256", "the SHA-256 of the folder's config.json (it changed since the "
                        "results were written?)", value["config_sha256"])
    return HFModel(str(resolved), digest)
