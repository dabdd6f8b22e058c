"""Real data: the three shared folders and the recbole demo, checked against their READMEs."""

from __future__ import annotations

import pytest

from metarec_core.config import SHARED_DATASETS_DIR
from metarec_core.data.importers import import_layout

# (users, catalogue items, items with interactions, interactions, categories) from the README
EXPECTED = {
    "amazon-beauty": (22_363, 12_101, 12_101, 198_502, 195),
    "instacart": (593, 36_434, 10_207, 119_183, 98),
    "ml-100k": (943, 1_682, 1_682, 100_000, 19),
}


@pytest.mark.slow
@pytest.mark.parametrize("key", list(EXPECTED))
def test_shared_dataset_counts(store, key):
    if not (SHARED_DATASETS_DIR / key).is_dir():
        pytest.skip(f"{SHARED_DATASETS_DIR / key} is absent")
    info = import_layout(store, key)
    got = (
        info.n_users,
        info.n_items,
        info.n_items_with_interactions,
        info.n_interactions,
        info.n_categories,
    )
    assert got == EXPECTED[key]
    items = store.items(key)
    assert items["text"].str.len().gt(0).all() and items["title"].str.len().gt(0).all()
    inter = store.interactions(key)
    assert inter.groupby("user_id")["position"].max().add(1).sum() == len(inter)
    if key == "instacart":
        assert {"department"} <= set(items.columns) and {"order_id", "day"} <= set(inter.columns)
    if key == "ml-100k":
        assert store.users(key).shape[0] == 943 and "genres" in items.columns
        assert inter["value"].between(1, 5).all()


@pytest.mark.slow
def test_demo_import_from_the_recbole_wheel(store):
    from metarec_core.data.demo import DemoUnavailable, import_demo

    try:
        [info] = import_demo(store, "ml-100k")
    except DemoUnavailable as exc:
        pytest.skip(f"recbole wheel unavailable: {exc}")
    assert (info.name, info.n_users, info.n_items, info.n_interactions) == (
        "ml-100k",
        943,
        1_682,
        100_000,
    )
    items = store.items("ml-100k").set_index("item_id")
    assert (
        items.loc["1", "title"] == "Toy Story (1995)" and items.loc["1", "category"] == "Animation"
    )
    assert import_demo(store, "ml-100k", if_missing=True)[0].created_at == info.created_at
