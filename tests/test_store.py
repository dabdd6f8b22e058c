"""The store: registry, canonical reads, names, atomic replace, file persistence, read-only."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from conftest import store_snapshot

from metarec_core.data.importers import import_files
from metarec_core.data.store import Store
from metarec_core.errors import ConflictError, MetaRecError, NotFoundError, ValidationError


def test_empty_store_lists_nothing(store):
    assert store.list_datasets().empty
    assert not store.has_dataset("shop")


def test_import_then_read_canonical_frames(store, tiny_files):
    info = import_files(store, "shop", tiny_files["interactions"], tiny_files["items"])
    assert (info.n_users, info.n_items, info.n_interactions, info.n_categories) == (3, 5, 6, 2)
    assert info.order_kind == "timestamp" and info.order_cols == "timestamp"
    inter = store.interactions("shop")
    assert list(inter.columns[:5]) == ["user_id", "item_id", "position", "ts", "value"]
    assert inter["position"].dtype == "int64" and inter["ts"].dtype == "float64"
    # sorted by (user_id, position); u1's order follows the timestamps 50, 100, 200
    assert inter["user_id"].tolist() == ["u1", "u1", "u1", "u2", "u2", "u3"]
    assert inter[inter.user_id == "u1"]["item_id"].tolist() == ["i2", "i1", "i3"]
    assert inter["position"].tolist() == [0, 1, 2, 0, 1, 0]
    items = store.items("shop")
    assert list(items.columns[:4]) == ["item_id", "title", "text", "category"]
    assert items.set_index("item_id").loc["i3", "category"] == "dairy"
    assert "price" in items.columns
    assert store.users("shop") is None


def test_interactions_for_some_users(store, tiny_files):
    import_files(store, "shop", tiny_files["interactions"], tiny_files["items"])
    df = store.interactions("shop", user_ids=["u2", "u3"])
    assert df["user_id"].tolist() == ["u2", "u2", "u3"]


def test_users_table(store, tiny_files):
    import_files(store, "shop", **{k: v for k, v in tiny_files.items()})
    users = store.users("shop")
    assert users["user_id"].tolist() == ["u1", "u2", "u3"]
    assert store.info("shop").has_users


def test_unknown_dataset_is_not_found(store):
    with pytest.raises(NotFoundError, match="dataset 'nope' not found"):
        store.items("nope")


@pytest.mark.parametrize("bad", ["", "a b", "x;drop", 'q"', "main", "-lead", "a" * 64])
def test_invalid_names_are_refused(store, tiny_files, bad):
    with pytest.raises(ValidationError, match="dataset name"):
        import_files(store, bad, tiny_files["interactions"], tiny_files["items"])
    assert store.list_datasets().empty


def test_existing_name_needs_replace(store, tiny_files):
    import_files(store, "shop", tiny_files["interactions"], tiny_files["items"])
    before = store_snapshot(store)
    with pytest.raises(ConflictError, match=r"already exists.*--replace"):
        import_files(store, "SHOP", tiny_files["interactions"], tiny_files["items"])
    assert store_snapshot(store) == before


def test_replace_swaps_the_dataset(store, tiny_files):
    import_files(store, "shop", tiny_files["interactions"], tiny_files["items"])
    small = pd.DataFrame({"user_id": ["a"], "item_id": ["i1"], "ts": [1.0]})
    import_files(store, "shop", small, tiny_files["items"], replace=True)
    assert len(store.interactions("shop")) == 1
    assert store.list_datasets()["name"].tolist() == ["shop"]


def test_failed_replace_leaves_old_dataset(store, tiny_files, tmp_path):
    import_files(store, "shop", tiny_files["interactions"], tiny_files["items"])
    before = store_snapshot(store)
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,timestamp\nu1,i1,yesterday-ish\n")
    with pytest.raises(ValidationError):
        import_files(store, "shop", bad, tiny_files["items"], replace=True)
    assert store_snapshot(store) == before


def test_failure_inside_the_write_transaction_rolls_back(store, tiny_files):
    import_files(store, "shop", tiny_files["interactions"], tiny_files["items"])
    before = store_snapshot(store)
    info = store.info("shop")
    good = {"interactions": store.interactions("shop"), "items": store.items("shop")}
    # the old schema is dropped and two tables are created before the third one fails
    with pytest.raises(duckdb.InvalidInputException, match="not suitable"):
        store.write_dataset(info, {**good, "users": object()}, replace=True)
    assert store_snapshot(store) == before


def test_file_store_persists_and_opens_read_only(tmp_path, tiny_files):
    db = tmp_path / "s.duckdb"
    with Store(db) as s:
        import_files(s, "shop", tiny_files["interactions"], tiny_files["items"])
    with Store(db, read_only=True) as ro:
        assert ro.has_dataset("shop")
        assert len(ro.interactions("shop")) == 6
        with pytest.raises(MetaRecError, match="read-only"):
            import_files(ro, "other", tiny_files["interactions"], tiny_files["items"])


def test_read_only_store_must_exist(tmp_path):
    with pytest.raises(NotFoundError):
        Store(tmp_path / "missing.duckdb", read_only=True)


def test_delete_dataset(store, tiny_files):
    import_files(store, "shop", tiny_files["interactions"], tiny_files["items"])
    store.delete_dataset("shop")
    assert not store.has_dataset("shop")


def test_dataset_named_like_the_database_file(tmp_path, tiny_files):
    with Store(tmp_path / "metarec.duckdb") as s:  # DuckDB names the catalog "metarec"
        import_files(s, "metarec", tiny_files["interactions"], tiny_files["items"])
        assert len(s.items("metarec")) == 5
        assert s.query("SELECT count(*) AS n FROM items", dataset="metarec")["n"].tolist() == [5]


def test_mixed_modes_in_one_process_give_a_clear_error(tmp_path):
    Store(tmp_path / "s.duckdb").close()
    with (
        Store(tmp_path / "s.duckdb", read_only=True),
        pytest.raises(MetaRecError, match="already open in this process"),
    ):
        Store(tmp_path / "s.duckdb")
