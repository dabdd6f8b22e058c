"""One shared EmbeddingCache per (encoder, cache folder) in the process, and a one-call helper."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from metarec_core.embed.cache import EmbeddingCache
from metarec_core.embed.encoder import TextEncoder, get_encoder
from metarec_core.types import Progress, no_progress

_CACHES: dict[tuple[int, str], EmbeddingCache] = {}
_LOCK = threading.Lock()


def shared_cache(encoder: TextEncoder, cache_dir: str | Path | None = None) -> EmbeddingCache:
    """The process-wide cache for ``encoder`` (default folder: Paths().cache_dir)."""
    if cache_dir is None:
        from metarec_core.config import Paths

        cache_dir = Paths().cache_dir
    key = (id(encoder), str(Path(cache_dir).resolve()))
    with _LOCK:
        if key not in _CACHES:
            _CACHES[key] = EmbeddingCache(encoder, cache_dir)
        return _CACHES[key]


def embed_texts(
    texts: Sequence[str],
    encoder: TextEncoder | None = None,
    name: str = "minilm",
    cache_dir: str | Path | None = None,
    batch_size: int = 128,
    progress: Progress = no_progress,
) -> np.ndarray:
    """Cached embeddings (N, D) of ``texts`` with ``encoder`` (default ``get_encoder(name)``)."""
    enc = encoder if encoder is not None else get_encoder(name)
    return shared_cache(enc, cache_dir).embed(list(texts), batch_size, progress)
