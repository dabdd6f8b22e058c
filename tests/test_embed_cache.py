"""The persistent embedding cache: identical hits, persistence, atomic shards, compaction."""

from __future__ import annotations

import numpy as np

from metarec_core.embed import cache as cache_mod
from metarec_core.embed.cache import EmbeddingCache
from metarec_core.embed.encoder import FakeEncoder, get_encoder
from metarec_core.embed.service import embed_texts, shared_cache


class CountingEncoder(FakeEncoder):
    """FakeEncoder that counts the texts it is asked to encode."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def encode(self, texts, batch_size=64, progress=None):
        self.calls += len(texts)
        return super().encode(texts, batch_size)


def test_hits_are_identical_and_not_reencoded(tmp_path):
    enc = CountingEncoder()
    cache = EmbeddingCache(enc, tmp_path)
    a = cache.embed(["red apple", "milk", "red apple", None])
    b = cache.embed(["milk", "red apple"])
    assert enc.calls == 3  # "red apple", "milk", "" once each
    np.testing.assert_array_equal(a[1], b[0])
    np.testing.assert_array_equal(a[0], a[2])
    np.testing.assert_allclose(a[:2], FakeEncoder().encode(["red apple", "milk"]), atol=1e-7)
    assert cache.embed([]).shape == (0, enc.dim)


def test_persistence_across_instances(tmp_path):
    first = EmbeddingCache(CountingEncoder(), tmp_path)
    v = first.embed(["soap bar", "dog food"])
    enc = CountingEncoder()
    second = EmbeddingCache(enc, tmp_path)
    np.testing.assert_array_equal(second.embed(["dog food", "soap bar"]), v[::-1])
    assert enc.calls == 0 and len(second) == 2


def test_shards_are_atomic_and_other_processes_are_picked_up(tmp_path):
    a = EmbeddingCache(CountingEncoder(), tmp_path)
    enc_b = CountingEncoder()
    b = EmbeddingCache(enc_b, tmp_path)
    a.embed(["written by a"])
    b.embed(["written by a"])  # a's shard appeared after b was created
    assert enc_b.calls == 0
    files = [p.name for p in (tmp_path / FakeEncoder.model_id).iterdir()]
    assert files and all(f.startswith("shard-") and f.endswith(".parquet") for f in files)


def test_many_shards_are_compacted(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "COMPACT_ABOVE", 3)
    c = EmbeddingCache(FakeEncoder(), tmp_path)
    for i in range(5):
        c.embed([f"text {i}"])
    merged = EmbeddingCache(FakeEncoder(), tmp_path)
    assert len(list((tmp_path / FakeEncoder.model_id).glob("*.parquet"))) <= 3
    enc = CountingEncoder()
    again = EmbeddingCache(enc, tmp_path)
    texts = [f"text {i}" for i in range(5)]
    np.testing.assert_array_equal(again.embed(texts), merged.embed(texts))
    assert enc.calls == 0


def test_shared_cache_is_one_per_encoder_and_folder(tmp_path):
    enc = get_encoder("fake")
    assert shared_cache(enc, tmp_path) is shared_cache(enc, tmp_path)
    assert embed_texts(["x"], encoder=enc, cache_dir=tmp_path).shape == (1, enc.dim)
