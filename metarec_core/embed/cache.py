"""A persistent embedding cache keyed by (model id, text): each text is embedded once.

Vectors live in Parquet shards under ``<cache_dir>/<model_id>/``; each write adds a new shard
atomically (temp file + rename), so concurrent processes never corrupt each other. Lookups are
served from an in-memory index (text -> row, so hits skip hashing), so cache hits run at memory
speed (~10^5-10^6 texts/s). On a miss, shards written meanwhile by other processes are picked up
before encoding; when many small shards pile up they are merged into one on load.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from metarec_core.embed.encoder import TextEncoder
from metarec_core.types import Progress, no_progress

log = logging.getLogger(__name__)

COMPACT_ABOVE = 32  # merge shards on load when there are more than this many


def text_key(text: str) -> str:
    """The cache key of one text (sha1 hex of its UTF-8 bytes)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Cached embeddings for one encoder. ``cache_dir=None`` keeps everything in memory only."""

    def __init__(self, encoder: TextEncoder, cache_dir: str | Path | None = None) -> None:
        self.encoder = encoder
        slug = re.sub(r"[^A-Za-z0-9_.-]", "_", encoder.model_id)
        self.dir = Path(cache_dir) / slug if cache_dir is not None else None
        self._index: dict[str, int] = {}  # sha1 key -> row
        self._by_text: dict[str, int] = {}  # text -> row, the fast path for hits
        self._rows: list[np.ndarray] = []  # blocks of (n, dim)
        self._matrix: np.ndarray | None = None
        self._lock = threading.Lock()
        self._loaded_shards: set[str] = set()
        self._load()

    def _load(self) -> None:
        """Read shards not read yet (tolerates shards that vanish during a compaction)."""
        if self.dir is None or not self.dir.exists():
            return
        shards = sorted(self.dir.glob("*.parquet"))
        for shard in shards:
            if shard.name in self._loaded_shards:
                continue
            try:
                table = pq.read_table(shard)
            except (FileNotFoundError, OSError) as exc:
                log.debug("skipping shard %s: %s", shard.name, exc)
                continue
            keys = table.column("key").to_pylist()
            flat = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
            vecs = np.asarray(flat, dtype=np.float32).reshape(len(keys), self.encoder.dim)
            self._add(keys, vecs)
            self._loaded_shards.add(shard.name)
        if len(shards) > COMPACT_ABOVE:
            self._compact(shards)

    def _compact(self, shards: list[Path]) -> None:
        """Write everything known as one shard, then remove the shards it replaces."""
        keys = [""] * len(self._index)
        for k, row in self._index.items():
            keys[row] = k
        self._persist(keys, self._all())
        for shard in shards:
            shard.unlink(missing_ok=True)
            self._loaded_shards.discard(shard.name)

    def _add(self, keys: list[str], vecs: np.ndarray) -> None:
        base = sum(len(b) for b in self._rows)
        fresh = [i for i, k in enumerate(keys) if k not in self._index]
        for j, i in enumerate(fresh):
            self._index[keys[i]] = base + j
        if fresh:
            self._rows.append(vecs[fresh])
            self._matrix = None

    def _all(self) -> np.ndarray:
        if self._matrix is None:
            self._matrix = (
                np.concatenate(self._rows)
                if self._rows
                else np.zeros((0, self.encoder.dim), dtype=np.float32)
            )
            self._rows = [self._matrix]
        return self._matrix

    def __len__(self) -> int:
        return len(self._index)

    def embed(
        self, texts: Sequence[str], batch_size: int = 64, progress: Progress = no_progress
    ) -> np.ndarray:
        """Embeddings of ``texts`` (N, dim) float32: cached ones looked up, new ones encoded and stored."""
        texts = [t if isinstance(t, str) else "" for t in texts]
        with self._lock:
            by_text = self._by_text
            rows = [by_text.get(t, -1) for t in texts]
            if -1 in rows:
                rows = self._fill(texts, rows, batch_size, progress)
            return self._all()[np.asarray(rows, dtype=np.int64)]  # (N, dim)

    def _fill(
        self, texts: list[str], rows: list[int], batch_size: int, progress: Progress
    ) -> list[int]:
        """Resolve rows of texts not seen in this process: on disk (other processes) or encode."""
        todo = {t: text_key(t) for t, r in zip(texts, rows, strict=True) if r < 0}
        if any(k not in self._index for k in todo.values()):
            self._load()  # shards written meanwhile by other processes
        missing = list(dict.fromkeys(k for k in todo.values() if k not in self._index))
        if missing:
            first = {k: t for t, k in todo.items()}
            vecs = self.encoder.encode([first[k] for k in missing], batch_size, progress)
            self._add(missing, np.asarray(vecs, dtype=np.float32))
            self._persist(missing, vecs)
        for t, k in todo.items():
            self._by_text[t] = self._index[k]
        return [self._by_text[t] for t in texts]

    def _persist(self, keys: list[str], vecs: np.ndarray) -> None:
        if self.dir is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"shard-{uuid.uuid4().hex}.parquet"
        flat = pa.array(vecs.astype(np.float32).reshape(-1))
        vectors = pa.FixedSizeListArray.from_arrays(flat, self.encoder.dim)
        table = pa.table({"key": pa.array(keys), "vector": vectors})
        tmp = self.dir / f".{name}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, self.dir / name)
        self._loaded_shards.add(name)
