"""One shared EmbeddingCache per (encoder, cache folder) in the process, and a one-call helper.

``lazy_encoder(name)`` defers loading the model until a text is actually missing from the cache,
so a command whose texts are all cached never pays the model load (seconds for MiniLM).
"""

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


class LazyEncoder:
    """The encoder ``get_encoder(name)``, loaded on the first ``encode`` call.

    Its id and dimension come from the registry, so an unknown name fails here, at once, and
    an encoder that is not installed fails (one line, saying how to install it) only when a
    text is missing from the cache.
    """

    def __init__(self, name: str) -> None:
        from metarec_core.embed.registry import encoder_spec

        spec = encoder_spec(name)
        self.name = spec.name
        self.model_id, self.dim = spec.model_id, spec.dim

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, progress: Progress = no_progress
    ) -> np.ndarray:
        return get_encoder(self.name).encode(texts, batch_size, progress)


def lazy_encoder(name: str = "minilm") -> LazyEncoder:
    """An encoder for ``name`` that loads its model only when a text must be embedded."""
    return LazyEncoder(name)


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
