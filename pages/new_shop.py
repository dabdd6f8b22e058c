"""New Shop: serve this shop's new shoppers with a model trained on another shop, and see how
that compares with text-only and in-shop methods as the shop's log grows."""

import streamlit as st

from metarec_core import services
from metarec_core.viz import figures as fig
from pages._shared import resources as res
from pages._shared.context import context
from pages._shared.errors import error_boundary
from pages._shared.plain import plain
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
if st.button("Compare", type="primary", key="ns_run"):
    with error_boundary("comparing on this shop's new shoppers"):
        bar = StreamlitProgress("Embedding this shop's products…")
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
        st.session_state["ns_result"] = (source.dataset, int(k), curve)
result = st.session_state.get("ns_result")
if result is not None:
    src, k_used, curve = result
    st.plotly_chart(fig.new_shop_curve(curve), key="ns_chart")
    zero = curve[curve["target_users"] == 0].set_index("method")["ndcg@10"]
    if {"adapted", "text-tfidf"} <= set(zero.index) and zero["text-tfidf"] > 0:
        st.text(
            f"With no history in this shop, the model from {src} reaches NDCG@10 "
            f"{zero['adapted']:.3f} at k = {k_used}: {zero['adapted'] / zero['text-tfidf']:.1f}x "
            "text-only TF-IDF."
        )
    share = curve.attrs.get("popularity_share", 0.0)
    if share > 0:
        st.text(
            f"This shop is bought by popularity: ranking each new shopper's last few first "
            f"actions from their others showed it, so how many shoppers chose each product takes "
            f"{share:g} of the model's score."
        )
    view = curve.assign(**{"warm users seen": curve["target_users"].map(lambda n: f"{int(n):,}")})[
        ["method", "group", "warm users seen", "ndcg@10", "lo", "hi"]
    ]
    st.dataframe(view, hide_index=True, key="ns_table")
    st.caption(
        "lo / hi: 95% interval over shoppers. To start this shop from the other shop's model "
        f"once it has a log: `python -m metarec_core train --init-from {plain(str(source.path))} …`."
    )
