"""AppTest of serving one shop with another shop's model: the New Shop page and the Lab's
"Serve with" choice (tiny data, tiny models trained by the real job runner, fake encoder)."""

from __future__ import annotations

import pytest
from app_support import (  # noqa: F401
    DATASET,
    OTHER_SHOP,
    app_data_master,
    app_test,
    assert_clean,
    two_shops,
    two_shops_master,
)

pytestmark = pytest.mark.slow


def _open(page: str):
    at = app_test()
    at.sidebar.selectbox(key="app_dataset").set_value(DATASET).run()
    at.switch_page(page).run()
    assert_clean(at)
    return at


def test_new_shop_compares_the_other_shops_model_with_text_and_in_shop_methods(two_shops):  # noqa: F811
    at = _open("pages/new_shop.py")
    model = at.selectbox(key="ns_model").value
    assert model.dataset == OTHER_SHOP
    at.button(key="ns_run").click().run()
    assert_clean(at)
    run = at.session_state["ns_result"]
    curve = run.curve
    assert run.k == 3 and run.source == OTHER_SHOP
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


def test_the_no_log_lines_differ_in_dash_and_marker_and_the_command_pastes_as_is(two_shops):  # noqa: F811
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


def test_a_result_shows_only_for_the_shop_model_and_k_it_was_computed_for(two_shops):  # noqa: F811
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
    at.sidebar.selectbox(key="app_dataset").set_value(OTHER_SHOP).run()
    assert_clean(at)
    assert at.title[0].value == f"New Shop · {OTHER_SHOP}"
    assert at.selectbox(key="ns_model").value.dataset == DATASET
    assert not at.get("plotly_chart") and not at.dataframe and not at.text
    assert "ns_result" not in at.session_state


def test_coldstart_lab_serves_this_shop_with_the_other_shops_model(two_shops):  # noqa: F811
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
