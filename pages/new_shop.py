"""New Shop: serve this shop's new shoppers with a model trained on another shop, and see how
that compares with text-only and in-shop methods as the shop's log grows."""

import streamlit as st

from metarec_core import services
from pages._shared import resources as res
from pages._shared.context import context
from pages._shared.errors import error_boundary
from pages._shared.progress import StreamlitProgress

ctx = context()
dataset = ctx.require_dataset()
st.title(f"New Shop · {dataset}")
st.caption(
    "A shop that has just opened has no purchase history, so bestsellers, item-kNN and EASE "
    "cannot start. A model meta-trained on another shop can: it reads this shop's product "
    "text and adapts to each shopper's first actions. Below, this shop's held-out shoppers "
    "are ranked by that model, by text similarity alone, and by in-shop methods that learn "
    "from 100, 1,000 and all of this shop's other shoppers."
)
others = services.other_shop_models(res.paths(), dataset)
if not others:
    st.info(
        "No model of another shop yet: train one on **Training & Runs** with another dataset "
        "selected (each demo shop trains its own model the first time it is opened)."
    )
    st.stop()
source = st.selectbox(
    "Model from another shop",
    others,
    format_func=lambda m: f"{m.dataset}: {m.name}",
    key="ns_model",
)
k = st.slider("First k actions of each new shopper", 1, 10, 3, key="ns_k")
key = services.run_key(dataset, source, k)
if st.session_state.get("ns_result") is not None and st.session_state["ns_result"].key != key:
    del st.session_state["ns_result"]  # computed for another shop, model or k
if st.button("Compare", type="primary", key="ns_run"):
    with error_boundary("comparing on this shop's new shoppers"):
        bar = StreamlitProgress("Embedding this shop's products…", min_interval=0.0)
        model = res.other_shop_model(str(source.path), source.created, ctx.db, dataset)
        bar.bar.progress(0.0, text="Ranking for the held-out shoppers…")
        curve = services.new_shop_curve(
            model,
            res.interactions(ctx.db, dataset),
            res.catalogue(ctx.db, dataset),
            k=int(k),
            progress=bar,
        )
        bar.clear()
        st.session_state["ns_result"] = services.NewShopRun(key, source.dataset, int(k), curve)
result = st.session_state.get("ns_result")
if result is not None:
    st.plotly_chart(services.new_shop_figure(result.curve), key="ns_chart")
    for line in services.new_shop_summary(result.curve, result.source, result.k):
        st.text(line)
    curve = result.curve
    view = curve.assign(**{"warm users seen": curve["target_users"].map(lambda n: f"{int(n):,}")})[
        ["method", "group", "warm users seen", "ndcg@10", "lo", "hi"]
    ]
    st.dataframe(view, hide_index=True, key="ns_table")
    st.caption(
        "lo / hi: 95% interval over shoppers; where two intervals overlap, the gap may be chance. "
        "To start this shop's own model from the other shop's once it has a log "
        "(TARGET_LOG, TARGET_ITEMS: this shop's files):"
    )
    st.code(services.init_from_command(source.path, dataset), language="bash")
