"""AppTest of the app's longer flows on the tiny fixture: the first-run demo training, background
training jobs from the Training page, the welcome page's demo import, the stakeholder reports and
the error boundary. Real engines and real job processes throughout (fake encoder)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from app_support import (  # noqa: F401
    DATASET,
    ENV,
    app_data,
    app_data_master,
    app_test,
    assert_clean,
    build_store,
    env,
)

from metarec_core import jobs, services
from metarec_core.config import Paths

# AppTest flows that train models or run jobs: slow
pytestmark = pytest.mark.slow


def _wait_for_jobs(paths: Paths, timeout: float = 180) -> list[jobs.JobView]:
    end = time.time() + timeout
    while time.time() < end:
        views = jobs.list_jobs(paths)
        if views and not any(v.active for v in views):
            return views
        time.sleep(0.5)
    raise AssertionError(f"jobs still running after {timeout} s")


@pytest.fixture
def fresh_data(tmp_path, monkeypatch) -> Path:
    """The fixture dataset without any model, with the automatic demo training switched on."""
    d = tmp_path / "data"
    with env(METAREC_DATA_DIR=str(d), **ENV):
        build_store(d)
    monkeypatch.setenv("METAREC_DATA_DIR", str(d))
    monkeypatch.delenv("METAREC_DB", raising=False)
    monkeypatch.setenv("METAREC_ENCODER", "fake")
    monkeypatch.setenv("METAREC_AUTOTRAIN", "1")
    monkeypatch.setenv("METAREC_DEMO_TRAINING", "quick")
    monkeypatch.setenv("METAREC_UMAP_WARMUP", "0")
    yield d
    for view in jobs.list_jobs(Paths(d)):
        if view.active:
            jobs.cancel_job(view.job_id, Paths(d))


def test_first_run_trains_the_demo_models_and_unlocks_the_cold_start_lab(fresh_data):
    at = app_test()
    assert_clean(at)
    assert any("Training the demo models" in m.value for m in at.sidebar.markdown)
    at.switch_page("pages/coldstart_lab.py").run()
    assert_clean(at)
    waiting = any("demo model is training" in i.value for i in at.info)
    assert waiting or not jobs.list_jobs(Paths(fresh_data))[0].active
    # the other labs work meanwhile
    at.switch_page("pages/category_lab.py").run()
    assert_clean(at)
    views = _wait_for_jobs(Paths(fresh_data))
    assert len(views) == 1 and views[0].spec.auto and views[0].state == "done", views[0].error
    assert views[0].models == ["demo-coldstart", "demo-categories"]
    at.switch_page("pages/coldstart_lab.py").run()
    assert_clean(at)
    at.button(key="cs_adapt").click().run()
    assert_clean(at)
    assert len(at.session_state["cs_result"].after) == 10
    at.run()  # models exist now: no second automatic job
    assert len(jobs.list_jobs(Paths(fresh_data))) == 1


@pytest.mark.usefixtures("app_data")
def test_training_page_runs_a_job_refuses_a_taken_name_and_deletes():
    paths = Paths()
    at = app_test()
    at.switch_page("pages/training.py").run()
    assert_clean(at)
    at.radio(key="tr_kind").set_value("new categories")
    at.number_input(key="tr_epochs").set_value(1)
    at.text_input(key="tr_name").set_value("cats-from-page")
    _start_button(at).click().run()
    assert_clean(at)
    running = [v for v in jobs.list_jobs(paths) if v.active]
    # a second job for the same model directory is refused with a clear message
    _start_button(at).click().run()
    assert not at.exception
    if running:
        assert any("cats-from-page" in e.value for e in at.error)
    views = _wait_for_jobs(paths)
    assert views[0].state == "done", views[0].error or views[0].log_tail
    at.run()
    assert_clean(at)
    assert "cats-from-page" in at.selectbox(key="tr_pick").options
    at.selectbox(key="tr_pick").set_value("cats-from-page").run()
    at.checkbox(key="tr_confirm").check().run()
    at.button(key="tr_delete").click().run()
    assert_clean(at)
    assert not (paths.models_dir / DATASET / "cats-from-page").exists()
    assert "cats-from-page" not in at.selectbox(key="tr_pick").options


def _start_button(at):
    return next(b for b in at.button if b.label == "Start training")


@pytest.mark.usefixtures("app_data")
def test_sidebar_has_dataset_model_and_device():
    at = app_test()
    assert at.sidebar.selectbox(key="app_dataset").options == [DATASET]
    assert at.sidebar.selectbox(key="app_model").value == "tiny-coldstart"
    assert any("Device:" in c.value for c in at.sidebar.caption)


@pytest.mark.usefixtures("app_data")
def test_reports_from_both_labs_are_self_contained_html():
    at = app_test()
    at.switch_page("pages/coldstart_lab.py").run()
    at.button(key="cs_adapt").click().run()
    at.button(key="cs_rp_run").click().run()
    at.button(key="cs_co_run").click().run()
    assert_clean(at)
    assert any(b.proto.label.startswith("Download stakeholder report") for b in _downloads(at))
    result, cohort = at.session_state["cs_result"], at.session_state["cs_cohort"]
    replayed = at.session_state["cs_replay"]
    page = services.coldstart_report(result, DATASET, cohort, replayed)
    assert page.startswith("<!DOCTYPE html>") and "Plotly.newPlot" in page
    assert "<script src=" not in page  # nothing fetched from the network
    assert str(result.after["title"].iloc[0]) in page
    assert "Click-by-click replay" in page and "Step 0: no history yet" in page
    last = replayed.frames[-1]
    assert f"Step {last.step}: after" in page and "hits so far" in page
    assert "Lift of adaptation, user by user" in page and "95% low" in page
    at.switch_page("pages/category_lab.py").run()
    at.multiselect(key="cat_chosen").set_value(["Fruit", "Tools"])
    at.button(key="cat_run_btn").click().run()
    assert_clean(at)
    labels = {b.proto.label for b in _downloads(at)}
    assert {"Download predictions (CSV)", "Download stakeholder report (HTML)"} <= labels
    page = services.category_report(at.session_state["cat_result"], DATASET)
    assert "Confusion matrix" in page and "Plotly.newPlot" in page


def _downloads(at):
    return at.get("download_button")


@pytest.mark.usefixtures("app_data")
def test_errors_are_clear_messages_never_tracebacks():
    at = app_test()
    at.switch_page("pages/category_lab.py").run()
    at.multiselect(key="cat_chosen").set_value(["Fruit"])
    at.button(key="cat_run_btn").click().run()
    assert not at.exception
    assert any("at least 2" in e.value for e in at.error)
    at.switch_page("pages/coldstart_lab.py").run()
    at.text_input(key="cs_user_typed").set_value("nobody").run()
    assert not at.exception
    assert any("No shopper 'nobody'" in e.value for e in at.error)
    at.text_input(key="cs_user_typed").set_value("u0").run()  # a warm user: a fair warning
    at.button(key="cs_adapt").click().run()
    assert not at.exception and at.session_state["cs_result"].user == "u0"


@pytest.mark.slow
def test_welcome_page_imports_the_demo_shops_and_opens_on_the_shop(tmp_path, monkeypatch):
    monkeypatch.setenv("METAREC_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("METAREC_DB", raising=False)
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    at = app_test(timeout=300)
    assert at.title[0].value == "Welcome to MetaRec"
    at.button(key="welcome_import").click().run()
    assert_clean(at)
    assert at.title[0].value == "Overview · beauty-shop"
    assert at.sidebar.selectbox(key="app_dataset").options == ["beauty-shop", "grocery-shop"]
    labels = {m.label: m.value for m in at.metric}
    assert labels["Users"] == "22,363"


def _select_on_map(at, item_ids: list[str]) -> None:
    """What a lasso/box selection on the map sends back: the picked points' customdata."""
    points = [{"customdata": [i, ""]} for i in item_ids]
    at.session_state["map_chart"] = {
        "selection": {"points": points, "point_indices": [], "box": [], "lasso": []}
    }
    at.run()


@pytest.mark.usefixtures("app_data")
def test_a_map_selection_becomes_a_new_user_or_a_new_category():
    at = app_test(timeout=240)
    at.switch_page("pages/embedding_map.py").run()
    assert_clean(at)
    label = at.selectbox(key="map_user").options[2]  # a held-out user of the active model
    user = label.removeprefix("held-out user ")
    at.selectbox(key="map_user").set_value(user).run()
    assert_clean(at)
    ((adapted, replayed),) = at.session_state["map_adapted"].values()
    assert adapted.user == user and len(adapted.support) == 3
    assert replayed.user == user and replayed.frames[0].step == 0
    chart = at.get("plotly_chart")[0].proto.spec
    assert "user's path (step)" in chart and any(
        "path through the replay" in c.value for c in at.caption
    )
    _select_on_map(at, ["1", "2", "3"])
    assert any("3 items selected" in m.value for m in at.markdown)
    next(b for b in at.button if b.key == "map_to_user").click().run()
    assert_clean(at)
    assert at.title[0].value == "Cold-Start Lab"
    assert at.session_state["cs_custom_items"] == ["1", "2", "3"]
    # AppTest stays on the page it ran last; the browser follows st.switch_page by itself
    at.switch_page("pages/coldstart_lab.py").run()
    at.button(key="cs_adapt").click().run()
    assert_clean(at)
    assert list(at.session_state["cs_result"].support["item_id"]) == ["1", "2", "3"]
    at.switch_page("pages/embedding_map.py").run()  # now with the adapted user drawn on it
    assert_clean(at)
    _select_on_map(at, ["17", "18"])
    at.text_input(key="map_cat_name").set_value("tools picked")
    next(b for b in at.button if b.key == "map_to_cat").click().run()
    assert_clean(at)
    assert at.title[0].value == "New Category Lab"
    assert at.session_state["cat_search_labels"] == {"17": "tools picked", "18": "tools picked"}
