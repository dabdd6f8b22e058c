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
    run = at.session_state["ns_result"]
    curve = run.curve
    assert run.k == 3 and run.source == OTHER
    zero = curve[curve["target_users"] == 0]
    assert set(zero["method"]) == {"adapted", "no-adapt", "text-tfidf", "text-similarity"}
    grown = curve[curve["target_users"] > 0]
    assert set(grown["method"]) == {"popularity", "item-knn", "ease", "transfer+log"}
    assert curve["ndcg@10"].between(0, 1).all() and (curve["ndcg@10"] > 0).any()
    from metarec_core.coldstart.shop_popularity import SHARES

    assert curve.attrs["popularity_share"] in SHARES
    assert at.get("plotly_chart") and at.dataframe
    text = " ".join(t.value for t in at.text)
    assert "ranks best" in text and f"{int(curve['target_users'].max()):,} shoppers' log" in text


def _chart(at) -> dict:
    import json

    return json.loads(at.get("plotly_chart")[0].proto.spec)


def test_the_no_log_lines_differ_in_dash_and_marker_and_the_command_pastes_as_is(two_shops):
    import shlex

    at = _open("pages/new_shop.py")
    model = at.selectbox(key="ns_model").value
    at.button(key="ns_run").click().run()
    assert_clean(at)
    no_log = [t for t in _chart(at)["data"] if t["name"].endswith("(no log needed)")]
    assert len(no_log) == 4
    assert len({t["line"]["dash"] for t in no_log}) == 4
    assert len({t["marker"]["symbol"] for t in no_log}) == 4
    assert all("%{fullData.name}" in t["hovertemplate"] for t in no_log)
    (code,) = at.code
    words = shlex.split(code.value)
    assert words[words.index("--init-from") + 1] == str(model.path)  # "-" never as "\-"
    assert words[words.index("--dataset") + 1] == DATASET and "\\" not in code.value


def test_a_result_shows_only_for_the_shop_model_and_k_it_was_computed_for(two_shops):
    at = _open("pages/new_shop.py")
    at.button(key="ns_run").click().run()
    assert at.get("plotly_chart") and at.dataframe and at.code
    at.slider(key="ns_k").set_value(4).run()
    assert_clean(at)
    assert not at.get("plotly_chart") and not at.dataframe and not at.code and not at.text
    at.slider(key="ns_k").set_value(3).run()
    assert not at.get("plotly_chart")  # cleared, not kept for later
    at.button(key="ns_run").click().run()
    assert at.get("plotly_chart")
    at.sidebar.selectbox(key="app_dataset").set_value(OTHER).run()
    assert_clean(at)
    assert at.title[0].value == f"New Shop · {OTHER}"
    assert at.selectbox(key="ns_model").value.dataset == DATASET
    assert not at.get("plotly_chart") and not at.dataframe and not at.text
    assert "ns_result" not in at.session_state


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
