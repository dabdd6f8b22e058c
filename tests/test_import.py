"""Generic importer: file formats, column mapping, and every bad input (message + store unchanged)."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest
from conftest import TINY_INTERACTIONS, TINY_ITEMS, store_snapshot

from metarec_core.data.importers import import_files
from metarec_core.data.pipeline import ColumnMapping
from metarec_core.errors import ValidationError


@pytest.fixture
def seeded(store, tiny_files):
    """A store that already holds dataset 'base' (so 'unchanged' is a real check)."""
    import_files(store, "base", tiny_files["interactions"], tiny_files["items"])
    return store


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


# ---- formats and mappings ------------------------------------------------------------------------
def test_gzip_csv(store, tmp_path):
    inter, items = tmp_path / "i.csv.gz", tmp_path / "it.csv.gz"
    inter.write_bytes(gzip.compress(TINY_INTERACTIONS.encode()))
    items.write_bytes(gzip.compress(TINY_ITEMS.encode()))
    assert import_files(store, "gz", inter, items).n_interactions == 6


def test_parquet_file_and_partitioned_folder(store, tiny_files, tmp_path):
    inter = pd.read_csv(tiny_files["interactions"])
    inter.to_parquet(tmp_path / "inter.parquet")
    folder = tmp_path / "parts"
    inter.assign(month=[1, 1, 2, 2, 2, 3]).to_parquet(folder, partition_cols=["month"])
    items = tmp_path / "items.parquet"
    pd.read_csv(tiny_files["items"]).to_parquet(items)
    assert import_files(store, "pq", tmp_path / "inter.parquet", items).n_interactions == 6
    info = import_files(store, "parts", folder, items)
    assert info.n_interactions == 6
    assert "month" in store.interactions("parts").columns


def test_dataframes_and_explicit_mapping(store):
    inter = pd.DataFrame(
        {
            "cust": [7, 7, 8],
            "sku_code": ["A", "B", "A"],
            "day": [2, 1, 1],
            "basket": [1, 1, 1],
            "kind": ["view", "buy", "view"],
        }
    )
    items = pd.DataFrame(
        {"sku_code": ["A", "B"], "label": ["Soap bar", "Tooth paste"], "grp": ["bath", "teeth"]}
    )
    m = ColumnMapping(
        user_col="cust",
        item_col="sku_code",
        order_cols="day,basket",
        text_col="label",
        category_col="grp",
        event_col="kind",
    )
    info = import_files(store, "df", inter, items, mapping=m)
    assert info.order_cols == "day,basket" and info.order_kind == "sequence"
    df = store.interactions("df")
    assert df["user_id"].tolist() == ["7", "7", "8"]  # integer ids become text
    assert df[df.user_id == "7"]["item_id"].tolist() == ["B", "A"]
    assert df["event"].tolist() == ["buy", "view", "view"]
    it = store.items("df").set_index("item_id")
    assert it.loc["A", "text"] == "Soap bar" and it.loc["B", "category"] == "teeth"


def test_datetime_order_and_no_order(store, tmp_path):
    inter = _write(
        tmp_path, "i.csv", "user,item,date\nu,a,2024-03-02\nu,b,2024-01-05\nv,a,2024-02-01\n"
    )
    items = _write(tmp_path, "it.csv", "item,name\na,Alpha thing\nb,Beta thing\n")
    info = import_files(store, "dates", inter, items)
    assert info.order_kind == "timestamp"
    df = store.interactions("dates")
    assert df[df.user_id == "u"]["item_id"].tolist() == ["b", "a"]
    assert df["ts"].iloc[0] == pd.Timestamp("2024-01-05", tz="UTC").timestamp()
    plain = _write(tmp_path, "p.csv", "user_id,item_id\nu,b\nu,a\n")
    assert import_files(store, "rows", plain, items).order_kind == "file"
    assert store.interactions("rows")["item_id"].tolist() == ["b", "a"]  # file order kept


def test_text_from_descriptive_columns_and_multi_valued_category(store, tmp_path):
    inter = _write(tmp_path, "i.csv", "user_id,item_id\nu,1\nu,2\n")
    items = _write(
        tmp_path,
        "it.csv",
        "item_id,asin,brand,categories\n"
        "1,B01,Acme Co,Makeup > Nails > Nail Polish|Gifts\n"
        "2,B02,,Skin Care > Face\n",
    )
    import_files(store, "desc", inter, items)
    it = store.items("desc").set_index("item_id")
    assert it.loc["1", "category"] == "Nail Polish"
    assert it.loc["2", "category"] == "Face"
    assert it.loc["1", "text"] == "brand: Acme Co; categories: Makeup > Nails > Nail Polish|Gifts"
    assert it.loc["2", "text"] == "categories: Skin Care > Face"  # asin looks like an id: skipped


def test_leading_zero_ids_stay_text(store, tmp_path):
    inter = _write(tmp_path, "i.csv", "user_id,item_id\n007,0001\n007,0002\n")
    items = _write(tmp_path, "it.csv", "item_id,title\n0001,One\n0002,Two\n")
    import_files(store, "zeros", inter, items)
    assert store.interactions("zeros")["item_id"].tolist() == ["0001", "0002"]
    assert store.interactions("zeros")["user_id"].iloc[0] == "007"


def test_drop_unknown_items_flag(store, tiny_files, tmp_path):
    inter = _write(tmp_path, "i.csv", TINY_INTERACTIONS + "u3,zz,7,1\nu3,zz,8,1\n")
    info = import_files(store, "drop", inter, tiny_files["items"], drop_unknown_items=True)
    assert info.n_interactions == 6
    assert "zz" not in set(store.interactions("drop")["item_id"])


# ---- bad inputs: specific message, store unchanged ------------------------------------------------
BAD_CASES = {
    "missing user column": (
        "who,item_id,timestamp\nu1,i1,1\n",
        TINY_ITEMS,
        {},
        r"missing column user_id \(looked for user_id, userid.*found who, item_id, timestamp",
    ),
    "misnamed explicit column": (
        TINY_INTERACTIONS,
        TINY_ITEMS,
        {"mapping": ColumnMapping(order_cols=("time_stamp",))},
        r"no column 'time_stamp' for order; found user_id, item_id, timestamp, rating",
    ),
    "header only": ("user_id,item_id\n", TINY_ITEMS, {}, r"no rows"),
    "empty file": ("", TINY_ITEMS, {}, r"file is empty"),
    "non-numeric timestamp": (
        "user_id,item_id,timestamp\nu1,i1,100\nu1,i2,soon\n",
        TINY_ITEMS,
        {},
        r"column 'timestamp' has 1 value\(s\) that are neither numbers nor dates \(e.g. 'soon'\)",
    ),
    "missing order value": (
        "user_id,item_id,timestamp\nu1,i1,100\nu1,i2,\n",
        TINY_ITEMS,
        {},
        r"column 'timestamp' has 1 missing value\(s\)",
    ),
    "duplicate item ids": (
        TINY_INTERACTIONS,
        TINY_ITEMS + "i1,Another Apple,fruit,1.0\n",
        {},
        r"items \(.*\): 1 duplicate item id\(s\), e.g. i1",
    ),
    "unknown items": (
        TINY_INTERACTIONS + "u3,zz,7,1\nu3,zz,8,1\nu1,yy,9,1\n",
        TINY_ITEMS,
        {},
        r"3 interaction\(s\) refer to 2 item id\(s\) not in the items file.*--drop-unknown-items",
    ),
    "empty user id": (
        "user_id,item_id,timestamp\nu1,i1,1\n,i2,2\n",
        TINY_ITEMS,
        {},
        r"1 row\(s\) have an empty user_id",
    ),
    "empty item id in catalogue": (
        TINY_INTERACTIONS,
        TINY_ITEMS + ",Nameless,fruit,1\n",
        {},
        r"items \(.*\): 1 row\(s\) have an empty item_id",
    ),
    "items without text": (
        "user_id,item_id\nu,1\n",
        "item_id,price\n1,2.5\n",
        {},
        r"no text column",
    ),
    "size limit": (
        TINY_INTERACTIONS,
        TINY_ITEMS,
        {"max_bytes": 10},
        r"over the 1e-05 MB limit",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_is_refused_and_store_unchanged(seeded, tmp_path, case):
    inter_text, items_text, kwargs, message = BAD_CASES[case]
    inter = _write(tmp_path, "bad_inter.csv", inter_text)
    items = _write(tmp_path, "bad_items.csv", items_text)
    before = store_snapshot(seeded)
    with pytest.raises(ValidationError, match=message):
        import_files(seeded, "new", inter, items, **kwargs)
    with pytest.raises(ValidationError, match=message):  # also when replacing 'base'
        import_files(seeded, "base", inter, items, replace=True, **kwargs)
    assert store_snapshot(seeded) == before


def test_missing_file(seeded, tiny_files, tmp_path):
    before = store_snapshot(seeded)
    with pytest.raises(ValidationError, match=r"file not found: .*nope.csv"):
        import_files(seeded, "new", tmp_path / "nope.csv", tiny_files["items"])
    assert store_snapshot(seeded) == before


def test_duplicate_users_in_users_file(seeded, tiny_files, tmp_path):
    users = _write(tmp_path, "u.csv", "user_id,age\nu1,3\nu1,4\n")
    before = store_snapshot(seeded)
    with pytest.raises(ValidationError, match=r"users .*1 duplicate user id\(s\), e.g. u1"):
        import_files(seeded, "new", tiny_files["interactions"], tiny_files["items"], users)
    assert store_snapshot(seeded) == before


def test_unreadable_file(seeded, tiny_files, tmp_path):
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    with pytest.raises(ValidationError, match=r"cannot read .*junk.parquet"):
        import_files(seeded, "new", junk, tiny_files["items"])


def test_command_line_files_keep_ids_exactly_as_written(tmp_path):
    """Ids that look like decimals, exponents or numbers too long for 64 bits come back as text."""
    from metarec_core.data.canonical import canonical_items
    from metarec_core.data.files import read_table

    ids = ["29602.10", "00042", "29602E2", "98765432109876000119", "98765432109876000120"]
    path = tmp_path / "items.csv"
    path.write_text("item_id;title;price\n" + "".join(f"{i};t {i};1.5\n" for i in ids))
    table = read_table(path)
    assert table["item_id"].tolist() == ids and table["price"].dtype.kind == "f"
    assert canonical_items(table)["item_id"].tolist() == ids
