"""Overview: the size of the dataset, how many users are cold, activity and category mix."""

import streamlit as st

from metarec_core.viz import figures as fig
from pages._shared import resources as res
from pages._shared.context import context

ctx = context()
dataset = ctx.require_dataset()
st.title(f"Overview · {dataset}")

cold_k = st.slider("A user is *cold* with at most k interactions", 1, 20, 5, key="ov_cold_k")
data = res.overview(ctx.db, dataset, cold_k)
s = data.summary

c = st.columns(5)
c[0].metric("Users", f"{int(s['n_users']):,}")
c[1].metric("Items", f"{int(s['n_items']):,}")
c[2].metric("Interactions", f"{int(s['n_interactions']):,}")
c[3].metric("Categories", f"{int(s['n_categories']):,}")
share = s["n_cold_users"] / max(s["n_users"], 1)
c[4].metric(
    f"Cold users (≤ {cold_k})",
    f"{int(s['n_cold_users']):,}",
    f"{share:.1%} of users",
    delta_color="off",
    delta_arrow="off",
)

left, right = st.columns(2)
left.plotly_chart(fig.activity_histogram(data.per_user, cold_k), key="ov_hist")
right.plotly_chart(
    fig.category_bar(data.categories, "n_interactions", title="Interactions by category"),
    key="ov_mix",
)
label = "time" if data.order_kind == "timestamp" else "position in the user's history"
st.plotly_chart(
    fig.activity_over_time(data.over_time, "when", "n_interactions", f"Interactions over {label}"),
    key="ov_time",
)
st.caption(
    f"Median {s['median_per_user']:.0f} and mean {s['mean_per_user']:.1f} interactions per user; "
    f"{int(s['n_items_with_interactions']):,} items have at least one interaction."
)
