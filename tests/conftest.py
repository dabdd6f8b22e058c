"""Shared test fixtures (kept small): an in-memory store and a tiny hand-written dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_INTERACTIONS = """user_id,item_id,timestamp,rating
u1,i1,100,5
u1,i2,50,3
u1,i3,200,4
u2,i1,10,1
u2,i4,20,2
u3,i2,5,5
"""

TINY_ITEMS = """item_id,title,category,price
i1,Red Apple,fruit,1.0
i2,Green Pear,fruit,2.0
i3,Cheddar Cheese,dairy,3.5
i4,Whole Milk,dairy,1.2
i5,Blue Cheese,dairy,4.0
"""

TINY_USERS = """user_id,age
u1,30
u2,40
u3,50
"""


@pytest.fixture(autouse=True, scope="session")
def _isolated_data_dir(tmp_path_factory):
    """Tests never touch the user's data/ folder: every default path points at a temp folder.

    The downloaded demo wheel is the one thing shared (data/cache/wheels), so a machine fetches
    the recbole wheel once, not once per test run.
    """
    from metarec_core.config import PROJECT_ROOT

    data_dir = tmp_path_factory.mktemp("metarec-data")
    wheels = PROJECT_ROOT / "data" / "cache" / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    (data_dir / "cache").mkdir()
    (data_dir / "cache" / "wheels").symlink_to(wheels, target_is_directory=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("METAREC_DATA_DIR", str(data_dir))
    mp.delenv("METAREC_DB", raising=False)
    yield data_dir
    mp.undo()


@pytest.fixture
def store():
    """An empty in-memory store."""
    from metarec_core.data.store import Store

    s = Store(":memory:")
    yield s
    s.close()


@pytest.fixture
def tiny_files(tmp_path: Path) -> dict[str, Path]:
    """interactions.csv (3 users, 6 rows), items.csv (5 items, 2 categories), users.csv."""
    paths = {}
    for name, text in (
        ("interactions", TINY_INTERACTIONS),
        ("items", TINY_ITEMS),
        ("users", TINY_USERS),
    ):
        paths[name] = tmp_path / f"{name}.csv"
        paths[name].write_text(text)
    return paths


def store_snapshot(store) -> dict:
    """Everything visible in a store, for asserting that a failed import changed nothing."""
    snap = {"_registry": store.list_datasets().drop(columns=["created_at"]).to_dict("list")}
    for name in store.list_datasets()["name"]:
        snap[name] = (store.interactions(name).to_dict("list"), store.items(name).to_dict("list"))
    return snap
