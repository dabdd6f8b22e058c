"""Synthetic logs: exact size, skewed popularity and activity, determinism under the seed."""

from __future__ import annotations

import duckdb
import pytest

from benchmarks.synthetic import SyntheticConfig, write_synthetic
from metarec_core.errors import ValidationError


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    cfg = SyntheticConfig(n_rows=50_000, n_users=2_000, n_items=2_000, n_categories=40, seed=7)
    return write_synthetic(tmp_path_factory.mktemp("syn"), cfg)


def _rows(sql: str, *params):
    con = duckdb.connect()
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def test_shape_and_columns(synth):
    cols = [r[0] for r in _rows("DESCRIBE SELECT * FROM read_parquet(?)", synth.interactions_glob)]
    assert cols == ["user_id", "item_id", "timestamp", "position", "event"]
    n, n_unknown = _rows(
        "SELECT count(*), count(*) FILTER (WHERE it.item_id IS NULL) "
        "FROM read_parquet(?) i LEFT JOIN read_parquet(?) it USING (item_id)",
        synth.interactions_glob,
        str(synth.items_path),
    )[0]
    assert n == 50_000 and n_unknown == 0
    n_items, n_titles, n_null_cat = _rows(
        "SELECT count(*), count(DISTINCT title), count(*) FILTER (WHERE category IS NULL) "
        "FROM read_parquet(?)",
        str(synth.items_path),
    )[0]
    assert n_items == 2_000 and n_titles > 1_000 and n_null_cat == 0


def test_positions_are_dense_per_user(synth):
    bad = _rows(
        "SELECT count(*) FROM (SELECT user_id, min(position) AS lo, max(position) AS hi, "
        "count(*) AS n FROM read_parquet(?) GROUP BY user_id) WHERE lo <> 0 OR hi <> n - 1",
        synth.interactions_glob,
    )[0][0]
    assert bad == 0
    unordered = _rows(
        "SELECT count(*) FROM (SELECT timestamp < lag(timestamp) OVER "
        "(PARTITION BY user_id ORDER BY position) AS back FROM read_parquet(?)) WHERE back",
        synth.interactions_glob,
    )[0][0]
    assert unordered == 0


def test_popularity_and_activity_are_skewed(synth):
    top_share = _rows(
        "WITH c AS (SELECT item_id, count(*) AS n FROM read_parquet(?) GROUP BY item_id), "
        "r AS (SELECT n, row_number() OVER (ORDER BY n DESC) AS rk FROM c) "
        "SELECT sum(n) FILTER (WHERE rk <= 20) / sum(n) FROM r",  # top 1% of 2,000 items
        synth.interactions_glob,
    )[0][0]
    assert top_share > 0.10  # uniform would give 0.01
    p50, p99 = _rows(
        "SELECT quantile_cont(n, 0.5), quantile_cont(n, 0.99) FROM "
        "(SELECT count(*) AS n FROM read_parquet(?) GROUP BY user_id)",
        synth.interactions_glob,
    )[0]
    assert p99 > 5 * p50


def test_deterministic_under_seed(tmp_path):
    cfg = SyntheticConfig(n_rows=5_000, seed=3)
    a = write_synthetic(tmp_path / "a", cfg)
    b = write_synthetic(tmp_path / "b", cfg)
    c = write_synthetic(tmp_path / "c", SyntheticConfig(n_rows=5_000, seed=4))
    sql = "SELECT * FROM read_parquet(?) ORDER BY user_id, position"
    assert _rows(sql, a.interactions_glob) == _rows(sql, b.interactions_glob)
    assert _rows(sql, a.interactions_glob) != _rows(sql, c.interactions_glob)
    assert _rows(sql.replace("user_id, position", "item_id"), str(a.items_path)) == _rows(
        sql.replace("user_id, position", "item_id"), str(b.items_path)
    )


def test_partitioned_by_month(tmp_path):
    f = write_synthetic(tmp_path, SyntheticConfig(n_rows=3_000, seed=1), partition_by_month=True)
    months = sorted(p.name for p in f.interactions_path.iterdir())
    assert months[0] == "month=2024-01" and len(months) == 12
    assert _rows("SELECT count(*) FROM read_parquet(?)", f.interactions_glob)[0][0] == 3_000


def test_bad_config_is_refused():
    with pytest.raises(ValidationError, match="favourite_share"):
        SyntheticConfig(n_rows=10, favourite_share=2.0)
    with pytest.raises(ValidationError, match="ISO date"):
        SyntheticConfig(n_rows=10, start="yesterday'; DROP")
