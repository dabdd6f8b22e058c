"""Analyst SQL guard, the read-only connection, and the parameterised slices on tiny data."""

from __future__ import annotations

import pandas as pd
import pytest

from metarec_core.data import queries as Q
from metarec_core.data.importers import import_files
from metarec_core.data.sql_guard import check_select
from metarec_core.data.store import Store
from metarec_core.errors import ValidationError


@pytest.fixture
def shop(store, tiny_files):
    import_files(store, "shop", **tiny_files)
    return store


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "select 1;",
        "WITH a AS (SELECT 1 AS x) SELECT * FROM a",
        "FROM items",
        "(SELECT 1) UNION (SELECT 2)",
        "VALUES (1), (2)",
        "DESCRIBE items",
        "SHOW TABLES",
        "-- a comment\nSELECT '--not a comment' AS s /* trailing */ ;",
    ],
)
def test_guard_accepts_reads(sql):
    assert check_select(sql)


@pytest.mark.parametrize(
    "sql, message",
    [
        ("INSERT INTO t VALUES (1)", "got INSERT"),
        ("UPDATE t SET x = 1", "got UPDATE"),
        ("DELETE FROM t", "got DELETE"),
        ("CREATE TABLE t AS SELECT 1", "got CREATE"),
        ("DROP TABLE main.datasets", "got DROP"),
        ("ATTACH 'x.duckdb' AS x", "got ATTACH"),
        ("COPY (SELECT 1) TO 'out.csv'", "got COPY"),
        ("EXPORT DATABASE 'dir'", "got EXPORT"),
        ("PRAGMA version", "got PRAGMA"),
        ("SET threads = 1", "got SET"),
        ("INSTALL httpfs", "got INSTALL"),
        ("LOAD httpfs", "got LOAD"),
        ("CALL pragma_version()", "got CALL"),
        ("WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a", "read-only SELECT"),
        ("SELECT 1; SELECT 2", "only one statement is allowed, found 2"),
        ("SELECT 1; DROP TABLE t", "only one statement"),
        ("", "empty query"),
        ("SELEC 1", "SQL syntax error"),
    ],
)
def test_guard_rejects_everything_else(sql, message):
    with pytest.raises(ValidationError, match=message):
        check_select(sql)


def test_analyst_sql_with_dataset_and_limit(shop):
    res = Q.run_analyst_sql(shop, "SELECT * FROM interactions ORDER BY ts", dataset="shop", limit=4)
    assert len(res.frame) == 4 and res.truncated and res.elapsed_s >= 0
    res = shop.query('SELECT count(*) AS n FROM "shop".items WHERE category = ?', ["dairy"])
    assert res["n"].tolist() == [3]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM '/etc/hostname'",
    ],
)
def test_analyst_connection_has_no_file_access(shop, sql):
    with pytest.raises(ValidationError, match=r"access are disabled|does not exist"):
        shop.query(sql)


def test_store_instance_refuses_file_access_even_past_the_guard(tmp_path, tiny_files):
    """Defence in depth: the store's own cursor cannot read, write or attach files."""
    with Store(tmp_path / "s.duckdb") as s:
        import_files(s, "shop", **tiny_files)
        cur = s.cursor()
        for sql in (
            f"COPY (SELECT 1) TO '{tmp_path}/out.csv'",
            f"SELECT * FROM read_csv('{tiny_files['items']}')",
            f"ATTACH '{tmp_path}/other.duckdb' AS o",
            "INSTALL httpfs",
            "SET enable_external_access = true",
        ):
            with pytest.raises(Exception, match=r"disabled|Cannot enable"):
                cur.execute(sql)
        assert not (tmp_path / "out.csv").exists()


def test_read_only_transaction_refuses_writes(shop):
    """Even a write that slipped past the guard fails inside the READ ONLY transaction."""
    cur = shop.cursor()
    cur.execute("BEGIN TRANSACTION READ ONLY")
    with pytest.raises(Exception, match="read-only"):
        cur.execute('DELETE FROM "shop".items')
    cur.execute("ROLLBACK")
    assert len(shop.items("shop")) == 5


def test_summary(shop):
    row = Q.dataset_summary(shop, "shop", cold_k=1).iloc[0]
    assert (row.n_users, row.n_items, row.n_interactions, row.n_categories) == (3, 5, 6, 2)
    assert row.n_cold_users == 1 and row.n_items_with_interactions == 4
    assert (row.ts_min, row.ts_max) == (5.0, 200.0)


def test_user_history(shop):
    h = Q.user_history(shop, "shop", "u1")
    assert h["item_id"].tolist() == ["i2", "i1", "i3"]
    assert h["title"].tolist() == ["Green Pear", "Red Apple", "Cheddar Cheese"]
    assert len(Q.user_history(shop, "shop", "u1", limit=1)) == 1
    assert Q.user_history(shop, "shop", "nobody").empty


def test_item_popularity(shop):
    top = Q.item_popularity(shop, "shop", top_n=2)
    assert top["item_id"].tolist() == ["i1", "i2"]
    assert top["n_interactions"].tolist() == [2, 2]
    dairy = Q.item_popularity(shop, "shop", category="dairy")
    assert set(dairy["item_id"]) == {"i3", "i4"}
    assert dairy["share"].sum() == pytest.approx(1.0)


def test_category_mix(shop):
    mix = Q.category_mix(shop, "shop").set_index("category")
    assert mix.loc["fruit", "n_interactions"] == 4 and mix.loc["dairy", "n_items"] == 3
    assert mix["share"].sum() == pytest.approx(1.0)
    u2 = Q.category_mix(shop, "shop", user_id="u2").set_index("category")
    assert u2.loc["dairy", "n_interactions"] == 1


def test_activity_and_over_order(shop):
    act = Q.user_activity(shop, "shop")
    assert act.set_index("user_id")["n_interactions"].to_dict() == {"u1": 3, "u2": 2, "u3": 1}
    hist = Q.activity_histogram(shop, "shop", bins=2)
    assert hist["n_users_in_bucket"].sum() == 3
    over = Q.interactions_over_order(shop, "shop", by="position", buckets=3)
    assert over["n_interactions"].tolist() == [3, 2, 1]
    with pytest.raises(ValidationError):
        Q.interactions_over_order(shop, "shop", by="user_id; DROP")


def test_filtered_slice(shop):
    s = Q.filtered_slice(shop, "shop", category="fruit", min_activity=2)
    assert sorted(s["item_id"]) == ["i1", "i1", "i2"]
    s = Q.filtered_slice(shop, "shop", ts_min=50, ts_max=100)
    assert s["item_id"].tolist() == ["i2", "i1"]
    assert len(Q.filtered_slice(shop, "shop", limit=2)) == 2


def test_slice_summary_counts_the_whole_slice(shop):
    summary = Q.slice_summary(shop, "shop", category="fruit", min_activity=2)
    assert summary.n_matching == 3
    assert summary.top_items[["item_id", "n"]].values.tolist() == [["i1", 2], ["i2", 1]]
    assert summary.categories.values.tolist() == [["fruit", 3]]
    everything = Q.slice_summary(shop, "shop", top=1)
    assert everything.n_matching == 6 and len(everything.top_items) == 1
    assert everything.categories["n"].sum() == 6


def test_long_query_is_stopped(shop):
    with pytest.raises(ValidationError, match="stopped after"):
        Q.run_analyst_sql(shop, "SELECT count(*) FROM range(100000000000)", timeout_s=0.3)
    assert shop.query("SELECT 1 AS x")["x"].tolist() == [1]  # the store still works


def test_import_time_stats_give_the_same_answers_as_the_log(shop):
    for table in ("user_stats", "item_stats", "order_stats"):
        assert shop.has_table("shop", table)
    calls = {
        "summary": lambda: Q.dataset_summary(shop, "shop", cold_k=1),
        "activity": lambda: Q.user_activity(shop, "shop"),
        "histogram": lambda: Q.activity_histogram(shop, "shop", bins=3),
        "popularity": lambda: Q.item_popularity(shop, "shop", top_n=3),
        "fruit": lambda: Q.item_popularity(shop, "shop", category="fruit"),
        "mix": lambda: Q.category_mix(shop, "shop"),
        "slice": lambda: Q.slice_summary(shop, "shop").top_items,
        "active slice": lambda: Q.filtered_slice(shop, "shop", min_activity=2, max_activity=2),
        "fruit slice": lambda: Q.slice_summary(shop, "shop", category="fruit").top_items,
        "over ts": lambda: Q.interactions_over_order(shop, "shop", by="ts"),
        "over position": lambda: Q.interactions_over_order(shop, "shop", by="position"),
    }
    with_stats = {k: f() for k, f in calls.items()}
    assert with_stats["summary"]["n_interactions"].iloc[0] == 6
    assert with_stats["popularity"]["item_id"].tolist()[:2] == ["i1", "i2"]
    assert with_stats["active slice"]["user_id"].unique().tolist() == ["u2"]
    assert with_stats["over position"]["n_interactions"].sum() == 6
    with shop._transaction() as cur:  # a store written before the stats tables existed
        cur.execute(f"DROP TABLE {shop.ref('shop', 'user_stats')}")
        cur.execute(f"DROP TABLE {shop.ref('shop', 'item_stats')}")
        cur.execute(f"DROP TABLE {shop.ref('shop', 'order_stats')}")
    assert not shop.has_table("shop", "user_stats")
    for key, f in calls.items():
        pd.testing.assert_frame_equal(f(), with_stats[key], check_dtype=False, obj=key)


def test_example_queries_run_on_a_dataset(shop):
    from metarec_core.services import example_queries

    for title, sql in example_queries("shop").items():
        result = Q.run_analyst_sql(shop, sql, dataset="shop")
        assert len(result.frame.columns) >= 2, title
    top = Q.run_analyst_sql(shop, example_queries("shop")["Top 20 items"], dataset="shop").frame
    popular = Q.item_popularity(shop, "shop")
    assert top["n"].tolist() == popular["n_interactions"].tolist()
