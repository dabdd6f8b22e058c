"""The New Category Lab's encoder setting and open-set threshold slider (AppTest, tiny data,
fake encoder)."""

from __future__ import annotations

import pytest
from app_support import app_data, app_data_master, app_test, assert_clean  # noqa: F401

pytestmark = [pytest.mark.usefixtures("app_data"), pytest.mark.slow]


def test_the_threshold_slider_trades_recall_for_precision():
    at = app_test()
    at.switch_page("pages/category_lab.py").run()
    at.multiselect(key="cat_chosen").set_value(["Fruit", "Tools"])
    at.toggle(key="cat_open").set_value(True).run()
    at.button(key="cat_run_btn").click().run()
    assert_clean(at)
    base = at.session_state["cat_result"]
    accepted = (base.predictions["predicted"] != "(none of these)").sum()
    at.slider(key="cat_shift").set_value(0.15).run()  # re-runs without pressing Run
    assert_clean(at)
    strict = at.session_state["cat_result"]
    assert strict.threshold_shift == 0.15
    assert strict.threshold == pytest.approx(base.threshold + 0.15)
    assert (strict.predictions["predicted"] != "(none of these)").sum() < accepted


def test_the_encoder_is_the_models_own_or_a_choice_without_a_model():
    at = app_test()
    at.switch_page("pages/category_lab.py").run()
    assert_clean(at)
    assert any("the model's own" in c.value for c in at.caption)  # the trained demo model
    at.selectbox(key="cat_model").set_value("Encoder prototypes (no meta-training)").run()
    assert_clean(at)
    assert at.selectbox(key="cat_encoder").value == "fake"  # the app's encoder comes first


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_open_set_headline_counts_the_other_products():
    at = app_test()
    at.switch_page("pages/category_lab.py").run()
    at.multiselect(key="cat_chosen").set_value(["Fruit"])
    at.toggle(key="cat_open").set_value(True).run()
    at.slider(key="cat_foreign").set_value(50)
    at.slider(key="cat_shift").set_value(-0.15)
    at.button(key="cat_run_btn").click().run()
    assert_clean(at)
    run = at.session_state["cat_result"]
    p = run.predictions
    others_in = (p["truth"] == "(other)") & (p["predicted"] != "(none of these)")
    assert others_in.any()  # products of other categories called Fruit: accuracy is not 100%
    right = (p["predicted"] == p["truth"]).sum() + (
        (p["truth"] == "(other)") & (p["predicted"] == "(none of these)")
    ).sum()
    assert _metrics(at)["Accuracy"] == f"{right / len(p):.0%}" != "100%"
    assert not any(label.startswith("Leave-one-out") for label in _metrics(at))
    assert any("always right" in c.value for c in at.caption)


def test_results_are_cleared_when_a_setting_changes_and_name_the_encoder():
    at = app_test()
    at.switch_page("pages/category_lab.py").run()
    at.selectbox(key="cat_model").set_value("Encoder prototypes (no meta-training)").run()
    at.multiselect(key="cat_chosen").set_value(["Fruit", "Tools"])
    at.button(key="cat_run_btn").click().run()
    assert_clean(at)
    assert any("encoder fake" in c.value for c in at.caption)
    assert at.metric  # results on screen
    for change in (
        lambda: at.selectbox(key="cat_model").set_value("tiny-categories"),  # model
        lambda: at.multiselect(key="cat_chosen").set_value(["Fruit", "Books"]),  # categories
        lambda: at.toggle(key="cat_open").set_value(True),  # open set
    ):
        change().run()
        assert_clean(at)
        assert "cat_result" not in at.session_state and not at.metric
        assert any("settings changed" in i.value for i in at.info)
        at.button(key="cat_run_btn").click().run()  # a new run stands for the new settings
        assert_clean(at)
        assert at.metric
    captions = [c.value.replace("\\", "") for c in at.caption]  # shown as plain text
    assert any("model tiny-categories · encoder fake" in c for c in captions)


def test_a_search_that_finds_nothing_says_so_and_labelling_needs_a_pick():
    at = app_test()
    at.switch_page("pages/category_lab.py").run()
    at.radio(key="cat_mode").set_value("Label products found by search").run()
    at.text_input(key="cat_search").set_value("牛奶").run()
    assert_clean(at)
    assert any("No product matches '牛奶'" in i.value for i in at.info)
    assert at.multiselect(key="cat_pick").options == []
    assert at.button(key="cat_label_btn").disabled
    at.text_input(key="cat_search").set_value("apple").run()
    assert not any("No product matches" in i.value for i in at.info)
    options = at.multiselect(key="cat_pick").options
    at.multiselect(key="cat_pick").set_value([options[0].split("(")[-1].rstrip(")")]).run()
    assert not at.button(key="cat_label_btn").disabled


def test_search_labels_of_another_dataset_are_dropped_not_looked_up():
    """Labels name one dataset's products: after a switch they would be looked up in another
    catalogue (a KeyError on the page)."""
    at = app_test()
    at.switch_page("pages/category_lab.py").run()
    at.radio(key="cat_mode").set_value("Label products found by search").run()
    at.session_state["cat_search_labels"] = {"only-in-the-other-shop": "picked"}
    at.session_state["cat_search_dataset"] = "another-shop"
    at.run()
    assert_clean(at)
    assert at.session_state["cat_search_labels"] == {}
