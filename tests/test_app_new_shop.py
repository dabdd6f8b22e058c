"""AppTest of serving one shop with another shop's model: the New Shop page and the Lab's
"Serve with" choice (tiny data, tiny models trained by the real job runner, fake encoder)."""

from __future__ import annotations

import shutil

import pytest
from app_support import (  # noqa: F401
    DATASET,
    ENV,
    app_data_master,
    app_test,
    assert_clean,
    env,
    fixture_frames,
    private_copy,
)

pytestmark = pytest.mark.slow
OTHER = "tiny-b"


@pytest.fixture(scope="module")
def two_shops_master(app_data_master, tmp_path_factory):  # noqa: F811
    """The fixture shop plus a second shop (other ids, same kinds of products) with its model."""
    from metarec_core import services
    from metarec_core.config import Paths
    from metarec_core.data.importers import import_files
    from metarec_core.data.store import Store
    from metarec_core.jobs import JobSpec, TrainTask, run_job, start_job

    d = tmp_path_factory.mktemp("two-shops") / "data"
    shutil.copytree(app_data_master, d, ignore=shutil.ignore_patterns("*.lock", "*.wal"))
    inter, items = fixture_frames(seed=1)
    items = items.assign(item_id="b" + items["item_id"])
    inter = inter.assign(item_id="b" + inter["item_id"], user_id="b" + inter["user_id"])
    with env(METAREC_DATA_DIR=str(d), **ENV):
        paths = Paths(d)
        with Store(paths.db_path) as store:
            import_files(store, OTHER, inter, items)
        task = TrainTask("coldstart", "shop-b-coldstart", dict(services.TEST_COLDSTART))
        store = services.open_store(paths)
        frames = {"interactions": store.interactions(OTHER), "items": store.items(OTHER)}
        store.close()
        start_job(JobSpec(OTHER, (task,), "cpu", "fake"), frames, paths, runner=run_job)
    return d


@pytest.fixture
def two_shops(two_shops_master, tmp_path, monkeypatch):
    return private_copy(two_shops_master, tmp_path, monkeypatch)


def _open(page: str):
    at = app_test()
    at.sidebar.selectbox(key="app_dataset").set_value(DATASET).run()
    at.switch_page(page).run()
    assert_clean(at)
    return at


def test_new_shop_compares_the_other_shops_model_with_text_and_in_shop_methods(two_shops):
    at = _open("pages/new_shop.py")
    model = at.selectbox(key="ns_model").value
    assert model.dataset == OTHER
    at.button(key="ns_run").click().run()
    assert_clean(at)
    _, k, curve = at.session_state["ns_result"]
    assert k == 3
    zero = curve[curve["target_users"] == 0]
    assert set(zero["method"]) == {"adapted", "no-adapt", "text-tfidf", "text-similarity"}
    grown = curve[curve["target_users"] > 0]
    assert set(grown["method"]) == {"popularity", "item-knn", "ease", "transfer+log"}
    assert curve["ndcg@10"].between(0, 1).all() and (curve["ndcg@10"] > 0).any()
    from metarec_core.coldstart.shop_popularity import SHARES

    assert curve.attrs["popularity_share"] in SHARES
    assert at.get("plotly_chart") and at.dataframe


def test_coldstart_lab_serves_this_shop_with_the_other_shops_model(two_shops):
    at = _open("pages/coldstart_lab.py")
    options = at.selectbox(key="cs_model_from").options
    assert len(options) == 2
    at.selectbox(key="cs_model_from").select_index(1).run()
    assert_clean(at)
    at.button(key="cs_adapt").click().run()
    assert_clean(at)
    r = at.session_state["cs_result"]
    assert len(r.after) == 10 and not r.fallback
    assert not r.after["item_id"].astype(str).str.startswith("b").any()  # this shop's items
    assert not set(r.after["item_id"]) & set(r.support["item_id"])
