"""AppTest of the Cold-Start Lab served by this shop's model and by another shop's: "before" is
always this shop's own bestsellers, and a result shows only for the model and shopper it was
made for (tiny data, tiny models trained by the real job runner, fake encoder)."""

from __future__ import annotations

import json

import pytest
from app_support import (  # noqa: F401
    DATASET,
    OTHER_SHOP,
    app_data_master,
    app_test,
    assert_clean,
    fixture_frames,
    two_shops,
    two_shops_master,
)

pytestmark = pytest.mark.slow
COLD = "cold_users.json"  # the held-out shoppers, beside each model


def _lab():
    at = app_test()
    at.sidebar.selectbox(key="app_dataset").set_value(DATASET).run()
    at.switch_page("pages/coldstart_lab.py").run()
    assert_clean(at)
    return at


def _serve_with_other_shop(at) -> None:
    at.selectbox(key="cs_model_from").select_index(1).run()
    assert_clean(at)
    assert at.selectbox(key="cs_model_from").value.dataset == OTHER_SHOP


def _shop_counts(data_dir) -> dict[str, int]:
    """Shoppers per item in this shop's log, without the shoppers its model held out."""
    inter, _ = fixture_frames()
    cold = set(json.loads((data_dir / "models" / DATASET / "tiny-coldstart" / COLD).read_text()))
    log = inter[~inter["user_id"].isin(cold)].drop_duplicates(["user_id", "item_id"])
    return log["item_id"].astype(str).value_counts().to_dict()


def test_before_is_this_shops_bestsellers_whichever_model_serves(two_shops):  # noqa: F811
    at = _lab()
    at.button(key="cs_adapt").click().run()
    own = at.session_state["cs_result"]
    _serve_with_other_shop(at)
    at.button(key="cs_adapt").click().run()
    assert_clean(at)
    foreign = at.session_state["cs_result"]
    assert foreign.user == own.user and foreign.baseline == "popularity"
    assert foreign.before["item_id"].tolist() == own.before["item_id"].tolist()
    assert foreign.metrics["before"].tolist() == own.metrics["before"].tolist()
    counts = _shop_counts(two_shops)
    shown = [counts.get(i, 0) for i in foreign.before["item_id"]]
    others = [c for i, c in counts.items() if i not in set(foreign.support["item_id"])]
    assert shown == sorted(others, reverse=True)[: len(shown)]  # the true bestsellers, in order


def test_replay_and_cohort_start_from_this_shops_bestsellers_with_another_shops_model(two_shops):  # noqa: F811
    at = _lab()
    at.slider(key="cs_rp_n").set_value(2).run()
    at.button(key="cs_rp_run").click().run()
    at.multiselect(key="cs_co_methods").set_value(["adapted", "popularity"]).run()
    at.button(key="cs_co_run").click().run()
    own_step0 = at.session_state["cs_replay"].frames[0].recs["item_id"].tolist()
    own_pop = at.session_state["cs_cohort"].per_user.query("method == 'popularity'")
    _serve_with_other_shop(at)
    at.button(key="cs_rp_run").click().run()
    at.button(key="cs_co_run").click().run()
    assert_clean(at)
    rp, co = at.session_state["cs_replay"], at.session_state["cs_cohort"]
    assert rp.frames[0].recs["item_id"].tolist() == own_step0
    pop = co.per_user.query("method == 'popularity'").reset_index(drop=True)
    assert pop.equals(own_pop.reset_index(drop=True))
    assert rp.model == co.model == f"shop-b-coldstart (from {OTHER_SHOP})"


def test_a_result_shows_only_for_the_model_and_history_it_was_made_from(two_shops):  # noqa: F811
    at = _lab()
    _serve_with_other_shop(at)
    at.radio(key="cs_source").set_value("Build a new shopper").run()
    at.text_input(key="cs_search").set_value("guitar").run()
    ids = [o.split("(")[-1].rstrip(")") for o in at.multiselect(key="cs_add").options[:2]]
    at.multiselect(key="cs_add").set_value(ids).run()
    at.button(key="cs_add_btn").click().run()
    at.button(key="cs_adapt").click().run()
    assert_clean(at)
    (done,) = at.success
    assert f"with model shop-b-coldstart (from {OTHER_SHOP}) in" in done.value.replace("\\", "")
    assert any("whole history" in c.value for c in at.caption)  # why k is greyed out
    at.selectbox(key="cs_model_from").select_index(0).run()  # back to this shop's model
    assert_clean(at)
    assert not at.success and "cs_result" not in at.session_state
    at.button(key="cs_adapt").click().run()
    assert "with model tiny-coldstart in" in at.success[0].value.replace("\\", "")
    at.button(key="cs_clear").click().run()
    assert_clean(at)
    assert not at.success and "cs_result" not in at.session_state
    assert not [d for d in at.dataframe if "change" in d.value.columns]


def test_a_search_without_results_says_so(two_shops):  # noqa: F811
    at = _lab()
    at.radio(key="cs_source").set_value("Build a new shopper").run()
    at.text_input(key="cs_search").set_value("zeppelin").run()
    assert_clean(at)
    assert any("No product matches 'zeppelin'" in i.value for i in at.info)
