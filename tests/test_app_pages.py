"""AppTest of every page, started from app.py and moved with switch_page, on a tiny dataset with
tiny models trained by the real engines (fake encoder)."""

from __future__ import annotations

import pytest
from app_support import DATASET, app_data, app_data_master, app_test, assert_clean  # noqa: F401

# AppTest runs each page against a trained model: slow
pytestmark = [pytest.mark.usefixtures("app_data"), pytest.mark.slow]


def test_first_run_without_data_explains_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("METAREC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("METAREC_AUTOTRAIN", "0")
    at = app_test()
    assert_clean(at)
    assert at.title[0].value == "Welcome to MetaRec"
    assert any("make demo" in m.value for m in at.markdown)
    assert at.button(key="welcome_import")


def test_overview():
    at = app_test()
    assert_clean(at)
    assert at.sidebar.selectbox(key="app_dataset").value == DATASET
    labels = {m.label: m.value for m in at.metric}
    assert labels["Users"] == "80" and labels["Categories"] == "6"
    at.slider(key="ov_cold_k").set_value(10).run()
    assert_clean(at)
    assert any(m.label == "Cold users (≤ 10)" for m in at.metric)
    assert len(at.get("plotly_chart")) == 3


def test_explorer_filters_and_sql():
    at = app_test()
    at.switch_page("pages/explorer.py").run()
    assert_clean(at)
    at.selectbox(key="ex_category").set_value("Fruit").run()
    assert_clean(at)
    rows = at.dataframe[0].value
    assert len(rows) > 0 and set(rows["category"]) == {"Fruit"}
    caption = next(c.value for c in at.caption if "interactions match" in c.value)
    n_fruit = int(caption.split()[0].replace(",", ""))
    assert n_fruit == len(rows)  # the tiny slice fits the table; counts cover the whole slice
    at.selectbox(key="ex_example").set_value("Interactions per category").run()
    at.button(key="ex_run").click().run()
    assert_clean(at)
    assert "rows in" in at.success[0].value
    at.text_area(key="ex_sql").set_value("DROP TABLE items").run()
    at.button(key="ex_run").click().run()
    assert "read-only" in at.error[0].value or "only" in at.error[0].value
    at.text_area(key="ex_sql").set_value("SELEC nonsense").run()
    at.button(key="ex_run").click().run()
    assert at.error and not at.exception


def test_category_lab_existing_categories_label_next_and_report():
    at = app_test()
    at.switch_page("pages/category_lab.py").run()
    assert_clean(at)
    at.multiselect(key="cat_chosen").set_value(["Fruit", "Tools", "Books"])
    at.toggle(key="cat_open").set_value(True).run()
    at.button(key="cat_run_btn").click().run()
    assert_clean(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Accuracy"].endswith("%") and metrics["Open-set precision"].endswith("%")
    first = str(at.session_state["cat_result"].label_next.iloc[0]["item_id"])
    at.button(key="cat_ln_0_0").click().run()  # one-click labelling (truth known) re-runs
    assert_clean(at)
    task = at.session_state["cat_task"]
    assert first not in task["query"]  # labelled (or, if foreign, set aside) and re-run
    assert first in task["labels"] or task["truth"][first] == "(other)"
    assert at.session_state["cat_result"].predictions.shape[0] > 0


def test_category_lab_search_labels_with_plain_prototypes():
    at = app_test()
    at.switch_page("pages/category_lab.py").run()
    at.radio(key="cat_mode").set_value("Label products found by search").run()
    at.selectbox(key="cat_model").set_value("Encoder prototypes (no meta-training)").run()
    for name, word in (
        ("sweet", "apple"),
        ("sweet", "banana"),
        ("fix", "hammer"),
        ("fix", "drill"),
    ):
        at.text_input(key="cat_new_name").set_value(name)
        at.text_input(key="cat_search").set_value(word).run()
        options = at.multiselect(key="cat_pick").options
        at.multiselect(key="cat_pick").set_value([options[0].split("(")[-1].rstrip(")")]).run()
        at.button(key="cat_label_btn").click().run()
    at.button(key="cat_run_search").click().run()
    assert_clean(at)
    run = at.session_state["cat_result"]
    assert set(run.categories) == {"sweet", "fix"} and not run.truth_known
    assert "encoder prototypes" in run.model_used and "trained model at" not in run.model_used


def test_training_page_lists_models_and_switches_active():
    at = app_test()
    at.switch_page("pages/training.py").run()
    assert_clean(at)
    names = at.selectbox(key="tr_pick").options
    assert "tiny-categories" in names
    at.selectbox(key="tr_pick").set_value("tiny-categories").run()
    at.button(key="tr_activate").click().run()
    assert_clean(at)


def test_embedding_map_builds_and_caches():
    import streamlit as st

    from metarec_core.viz import projection

    projection._MEMORY.clear()  # another test in this process may have projected these items
    st.cache_data.clear()
    at = app_test(timeout=240)
    at.switch_page("pages/embedding_map.py").run()
    assert_clean(at)
    assert any("new projection" in c.value for c in at.caption)
    at.run()
    assert any("cached projection" in c.value for c in at.caption)


def test_coldstart_lab_adapts_a_held_out_user():
    at = app_test()
    at.switch_page("pages/coldstart_lab.py").run()
    assert_clean(at)
    at.slider(key="cs_k").set_value(3).run()
    at.button(key="cs_adapt").click().run()
    assert_clean(at)
    r = at.session_state["cs_result"]
    assert len(r.before) == 10 and len(r.after) == 10
    assert not set(r.after["item_id"]) & set(r.support["item_id"])
    assert {m.label for m in at.metric} >= {"HR@10 (after)", "NDCG@10 (after)"}
    assert any(s.value.startswith("Adapted to") for s in at.success)
    assert len(at.get("plotly_chart")) >= 2  # loss curve + category mix
    assert at.get("download_button")


def _table(at, column: str, without: str = ""):
    """The one dataframe on the page with ``column`` (and without ``without``); AppTest does
    not expose dataframe keys."""
    found = [
        d.value
        for d in at.dataframe
        if column in d.value.columns and (not without or without not in d.value.columns)
    ]
    assert len(found) == 1, [list(d.value.columns) for d in at.dataframe]
    return found[0]


def test_coldstart_lab_before_is_bestsellers_and_after_differs():
    at = app_test()
    at.switch_page("pages/coldstart_lab.py").run()
    assert at.selectbox(key="cs_baseline").value == "popularity"  # what a new shopper sees
    at.button(key="cs_adapt").click().run()
    assert_clean(at)
    r = at.session_state["cs_result"]
    assert r.baseline == "popularity" and r.method == "adapted"
    before = _table(at, "bought later", without="change")
    after = _table(at, "change")
    assert list(before["title"]) != list(after["title"])
    assert {"change", "from the shopper's actions", "bought later"} <= set(after.columns)
    assert set(after["change"]) <= {"new", "="} | {c for c in after["change"] if c[0] in "▲▼"}
    pop_order = r.before["item_id"].tolist()
    assert pop_order == [i for i in pop_order if i not in set(r.support["item_id"])]


def test_coldstart_lab_replays_a_held_out_shopper_step_by_step():
    at = app_test()
    at.switch_page("pages/coldstart_lab.py").run()
    at.slider(key="cs_rp_n").set_value(4).run()
    at.button(key="cs_rp_run").click().run()
    assert_clean(at)
    rp = at.session_state["cs_replay"]
    assert [f.step for f in rp.frames] == [0, 1, 2, 3, 4] and rp.note == ""
    assert (rp.frames[0].recs["change"] == "new").all()
    first = _table(at, "change")  # the slider opens on the last step
    assert first["title"].tolist() == rp.frames[4].recs["title"].tolist()
    at.slider(key="cs_rp_step").set_value(0).run()
    assert_clean(at)
    assert _table(at, "change")["title"].tolist() == rp.frames[0].recs["title"].tolist()
    assert _table(at, "hits so far")["step"].tolist() == [0, 1, 2, 3, 4]


def test_coldstart_lab_replay_of_a_short_hand_made_history_stops_and_says_so():
    at = app_test()
    at.switch_page("pages/coldstart_lab.py").run()
    at.session_state["handoff_user_items"] = ["1", "2", "no-such-item"]
    at.run()
    at.button(key="cs_rp_run").click().run()
    assert_clean(at)
    rp = at.session_state["cs_replay"]
    assert len(rp.frames) == 3 and rp.skipped == 1
    assert "stops at step 2" in rp.note and any("stops at step 2" in i.value for i in at.info)
    assert rp.frames[-1].next_in_list is None  # nothing known after a hand-made history


def test_coldstart_lab_new_user_from_catalogue_search_and_cohort():
    at = app_test()
    at.switch_page("pages/coldstart_lab.py").run()
    at.radio(key="cs_source").set_value("Build a new shopper").run()
    at.text_input(key="cs_search").set_value("guitar").run()
    at.multiselect(key="cs_add").set_value(at.multiselect(key="cs_add").options[:1]).run()
    at.text_input(key="cs_search").set_value("piano").run()
    opts = [o.split("(")[-1].rstrip(")") for o in at.multiselect(key="cs_add").options[:1]]
    at.multiselect(key="cs_add").set_value(opts).run()
    at.button(key="cs_add_btn").click().run()
    at.button(key="cs_adapt").click().run()
    assert_clean(at)
    r = at.session_state["cs_result"]
    assert r.user == "new shopper" and len(r.support) >= 1 and r.metrics.empty
    at.slider(key="cs_co_n").set_value(6)
    at.button(key="cs_co_run").click().run()
    assert_clean(at)
    co = at.session_state["cs_cohort"]
    assert {"adapted", "no-adapt"} <= set(co.per_user["method"])


def test_map_selection_hands_off_to_the_labs():
    """A selection on the map becomes a new user in the Cold-Start Lab (the hand-off path)."""
    at = app_test()
    at.switch_page("pages/coldstart_lab.py").run()
    at.session_state["handoff_user_items"] = ["1", "2", "3"]
    at.run()
    assert_clean(at)
    assert at.radio(key="cs_source").value == "Build a new shopper"
    assert at.session_state["cs_custom_items"] == ["1", "2", "3"]
    at.switch_page("pages/category_lab.py").run()
    at.session_state["handoff_category"] = ("picked", ["1", "2"])
    at.run()
    assert_clean(at)
    assert at.radio(key="cat_mode").value == "Label products found by search"
    assert at.session_state["cat_search_labels"] == {"1": "picked", "2": "picked"}


def test_category_lab_one_category_with_the_open_set():
    from metarec_core.categories.aids import NONE_OF_THESE
    from metarec_core.services import NONE_OF_THESE as PAGE_NONE

    assert PAGE_NONE == NONE_OF_THESE
    at = app_test()
    at.switch_page("pages/category_lab.py").run()
    at.multiselect(key="cat_chosen").set_value(["Fruit"])
    at.button(key="cat_run_btn").click().run()  # closed set: one category is not enough
    assert "at least 2 categories" in " ".join(e.value for e in at.error)
    at.toggle(key="cat_open").set_value(True).run()
    at.button(key="cat_run_btn").click().run()
    assert_clean(at)
    run = at.session_state["cat_result"]
    assert run.categories == ["Fruit"] and run.threshold is not None
    assert run.label_next["reason"].str.contains("threshold of Fruit").all()
    assert {m.label for m in at.metric} >= {"Open-set precision", "Open-set recall"}
    from metarec_core.services import category_report

    assert "Fruit" in category_report(run, DATASET)
