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

import numpy as np

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
        raise SpecError(
            f"{path}.path",
            "a local Hugging Face model folder",
            f"'{folder}' ({'a file' if resolved.exists() else 'no such folder'})",
            raw=True,
        )
    config = resolved / "config.json"
    if not config.is_file():
        raise SpecError(
            f"{path}.path", "a Hugging Face model folder with a config.json", f"'{folder}' (no config.json)", raw=True
        )
    digest = hashlib.sha256(config.read_bytes()).hexdigest()
    if "config_sha256" in value and value["config_sha256"] != digest:
        raise SpecError(
            f"{path}.config_sha256",
            "the SHA-256 of the folder's config.json (it changed since the results were written?)",
            value["config_sha256"],
        )
    return HFModel(str(resolved), digest)


@dataclass
class HFWeights:
    """B chains' fine-tuned weights (one state dict per chain, CPU tensors) and each chain's mean
    training loss over its last epoch."""

    states: list
    loss: Any


class HFBackend:
    """Fine-tuning, scoring and decoding of one pretrained model per chain (a Hugging Face model
    cannot hold several chains' weights in one batched product, so chains run one after another on
    one model instance, loading each chain's weights in turn).

    Dropout stays off while training (``eval()`` mode): it would draw from torch's global generator.
    Every generation starts from the pretrained weights (``warm_start: false``, as Shumailov et al.
    fine-tune the pretrained model every generation) or from the chain's previous weights.
    """

    def __init__(self, folder: str, device: str):
        self.folder, self.device = folder, device
        self._model = None
        self._pretrained = None

    @property
    def model(self):
        if self._model is None:
            from transformers import AutoModelForCausalLM

            self._model = AutoModelForCausalLM.from_pretrained(self.folder, local_files_only=True).to(self.device)
            self._model.eval()
            self._pretrained = {k: v.detach().cpu().clone() for k, v in self._model.state_dict().items()}
        return self._model

    @property
    def pretrained(self) -> dict:
        self.model  # noqa: B018 -- loads it
        return self._pretrained

    def bos(self, vocab: int) -> int:
        """The model's start token (its BOS, else EOS, else 0)."""
        config = self.model.config
        for token in (config.bos_token_id, config.eos_token_id, 0):
            if token is not None and 0 <= token < vocab:
                return int(token)
        return 0

    def _load(self, state: dict) -> Any:
        self.model.load_state_dict(state)
        return self.model

    def fit(
        self,
        inputs: np.ndarray,
        targets: np.ndarray,
        order: np.ndarray,
        previous: HFWeights | None,
        *,
        warm_start: bool,
        batch_size: int,
        learning_rate: float,
    ) -> HFWeights:
        import torch

        states, losses = [], []
        for b in range(inputs.shape[0]):
            start = previous.states[b] if (warm_start and previous is not None) else self.pretrained
            model = self._load(start)
            optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate, foreach=False)
            x = torch.as_tensor(inputs[b], device=self.device)
            y = torch.as_tensor(targets[b], device=self.device)
            last = 0.0
            for epoch in range(order.shape[1]):
                last = 0.0
                for first in range(0, order.shape[2], batch_size):
                    pick = torch.as_tensor(order[b, epoch, first : first + batch_size], device=self.device)
                    logits = model(input_ids=x[pick]).logits
                    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[pick].reshape(-1))
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
                    last += float(loss.detach()) * pick.shape[0]
            losses.append(last / order.shape[2])
            states.append({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
        return HFWeights(states, np.array(losses))

    def runner(self, state: dict):
        """A decoding model (see :mod:`sweep.families._text.decoding`) for one chain's weights."""
        model = self._load(state)

        def run(tokens):
            B, N, T = tokens.shape
            return model(input_ids=tokens.reshape(B * N, T)).logits[:, -1:, :].reshape(B, N, 1, -1)

        return run

    def log_probs(self, states: list, inputs: np.ndarray, targets: np.ndarray, chunk: int = 64) -> np.ndarray:
        """Log-probabilities (B, W, T) of windows (B, W, T) under each chain's weights."""
        import torch

        out = np.empty(inputs.shape)
        with torch.no_grad():
            for b, state in enumerate(states):
                model = self._load(state)
                for first in range(0, inputs.shape[1], chunk):
                    x = torch.as_tensor(inputs[b, first : first + chunk], device=self.device)
                    y = torch.as_tensor(targets[b, first : first + chunk], device=self.device)
                    logp = model(input_ids=x).logits.float().log_softmax(-1).gather(-1, y[..., None])[..., 0]
                    out[b, first : first + chunk] = logp.double().cpu().numpy()
        return out

    def __getstate__(self) -> dict[str, Any]:  # the model is reloaded from its folder, not pickled
        return {"folder": self.folder, "device": self.device, "_model": None, "_pretrained": None}


def max_positions(folder: str) -> int | None:
    """The longest input the model's config allows, if it says."""
    import json

    config = json.loads((Path(folder) / "config.json").read_text())
    for key in ("max_position_embeddings", "n_positions", "n_ctx"):
        if isinstance(config.get(key), int):
            return config[key]
    return None
