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
