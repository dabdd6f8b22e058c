"""Episode sampler: support/query split by SQL, no leakage, sharding, determinism."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from benchmarks.episodes import EpisodeConfig, EpisodeSampler, prefetch
from benchmarks.synthetic import SyntheticConfig, write_synthetic
from metarec_core.errors import ValidationError


def _log() -> pd.DataFrame:
    # u1: a, b, c, a, d, e   -> support [a, b, c]; query d, e (a repeats, so not a query item)
    # u2: b, b, b, b         -> support [b, b, b]; no query item left -> dropped from batches
    # u3: c, d, e, f, g, h, i (7 rows)
    # u4: two rows only      -> never eligible with k=3
    rows = [("u1", x) for x in "abcade"] + [("u2", "b")] * 4 + [("u3", x) for x in "cdefghi"]
    rows += [("u4", "a"), ("u4", "b")]
    df = pd.DataFrame(rows, columns=["user_id", "item_id"])
    df["position"] = df.groupby("user_id").cumcount()
    return df


@pytest.fixture()
def con():
    c = duckdb.connect()
    c.register("log_df", _log())
    c.execute("CREATE TABLE interactions AS SELECT * FROM log_df ORDER BY user_id, position")
    yield c
    c.close()


def _sampler(con, **kw) -> EpisodeSampler:
    items = kw.pop("item_ids", list("abcdefghi"))
    return EpisodeSampler(con, "interactions", items, EpisodeConfig(**kw))


def test_support_is_first_k_and_query_never_leaks(con):
    s = _sampler(con, k_support=3, n_query=3, batch_users=10)
    assert list(s.user_ids) == ["u1", "u2", "u3"]  # u4 has too few rows
    batch = s.fetch(["u1", "u2", "u3"])
    eps = {e.user_id: e for e in batch.episodes()}
    assert set(eps) == {"u1", "u3"}  # u2 has no item outside its support
    name = np.array(s.item_ids)
    assert list(name[eps["u1"].support]) == ["a", "b", "c"]
    assert list(name[eps["u1"].query]) == ["d", "e"]
    assert list(name[eps["u3"].support]) == ["c", "d", "e"]
    assert list(name[eps["u3"].query]) == ["f", "g", "h"]  # capped at n_query, in order
    for e in eps.values():
        assert not set(e.support.tolist()) & set(e.query.tolist())
    assert batch.support.shape == (2, 3) and batch.query.shape == (2, 3)
    assert batch.query_mask.tolist()[0] == [True, True, False]


def test_items_outside_the_catalogue_are_dropped(con):
    s = _sampler(con, k_support=3, n_query=5, item_ids=list("abcd"))
    eps = {e.user_id: e for e in s.fetch(["u1"]).episodes()}
    assert [s.item_ids[i] for i in eps["u1"].query] == ["d"]


def test_epoch_covers_each_user_once_and_is_seeded(con):
    a = [b.user_ids for b in _sampler(con, batch_users=1, seed=5).epoch(0)]
    b = [b.user_ids for b in _sampler(con, batch_users=1, seed=5).epoch(0)]
    assert a == b and sorted(u for x in a for u in x) == ["u1", "u3"]
    assert sum(len(x) for x in _sampler(con, batch_users=2).batches(n_batches=3)) > 0


def test_block_shuffle_still_covers_each_user_once(con):
    order = [u for b in _sampler(con, k_support=1, batch_users=1, block_users=2).epoch(3)
             for u in b.user_ids]  # fmt: skip
    assert sorted(order) == ["u1", "u3", "u4"]  # u2 has no query item left at k=1
    # users come in blocks of 2 consecutive ids: {u1, u2} and {u3, u4} are never interleaved
    blocks = [{"u1": 0, "u3": 1, "u4": 1}[u] for u in order]
    assert blocks in ([0, 1, 1], [1, 1, 0])


def test_prefetch_keeps_order_and_reraises():
    assert list(prefetch(iter(range(5)), depth=2)) == list(range(5))

    def broken():
        yield 1
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        list(prefetch(broken()))

    fetched = []

    def slow():
        for i in range(100):
            fetched.append(i)
            yield i

    gen = prefetch(slow(), depth=1)
    assert next(gen) == 0
    gen.close()  # the worker stops instead of running on in the background
    assert len(fetched) <= 3


def test_ranks_get_disjoint_shares(con):
    shares = [
        set(_sampler(con, k_support=1, rank=r, world_size=2).user_ids.tolist()) for r in (0, 1)
    ]
    assert not shares[0] & shares[1]
    assert shares[0] | shares[1] == {"u1", "u2", "u3", "u4"}
    with pytest.raises(ValidationError, match="rank"):
        EpisodeConfig(rank=2, world_size=2)


def test_reads_by_sql_from_parquet_and_store(tmp_path, monkeypatch):
    files = write_synthetic(tmp_path, SyntheticConfig(n_rows=4_000, n_users=100, seed=2))
    # Whole-table pandas reads would go through these; the sampler must not touch them.
    monkeypatch.setattr(pd, "read_parquet", lambda *a, **k: pytest.fail("pandas read"))
    for cls in (duckdb.DuckDBPyRelation, duckdb.DuckDBPyConnection):
        monkeypatch.setattr(cls, "df", lambda *a, **k: pytest.fail("whole result to pandas"))
    s = EpisodeSampler.from_parquet(
        files.interactions_glob, cfg=EpisodeConfig(k_support=5, n_query=10, batch_users=16)
    )
    got = list(prefetch(s.batches(n_batches=4)))
    assert len(got) == 4 and all(len(b) > 0 for b in got)
    truth = duckdb.connect().execute(
        "SELECT user_id, list(item_id ORDER BY position) FROM read_parquet(?) GROUP BY user_id",
        [files.interactions_glob],
    )
    history = dict(truth.fetchall())
    for b in got:
        for e in b.episodes():
            items = [s.item_ids[i] for i in e.support]
            assert items == history[e.user_id][:5]
            assert not set(e.query.tolist()) & set(e.support.tolist())
            assert all(s.item_ids[i] in history[e.user_id][5:] for i in e.query)


def test_from_store(tmp_path):
    from metarec_core.data.importers import import_files
    from metarec_core.data.store import Store

    store = Store(":memory:")
    items = pd.DataFrame({"item_id": list("abcdefghi"), "title": list("abcdefghi")})
    log = _log().rename(columns={"position": "seq"})
    import_files(store, "tiny", log, items)
    s = EpisodeSampler.from_store(store, "tiny", cfg=EpisodeConfig(k_support=3, n_query=3))
    eps = {e.user_id: e for e in s.fetch(["u1", "u3"]).episodes()}
    assert [s.item_ids[i] for i in eps["u1"].query] == ["d", "e"]
    store.close()
