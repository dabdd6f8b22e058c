"""Cold-Start Lab: adapt the recommender to a user with only a few interactions, before vs after."""

import pandas as pd
import streamlit as st

from metarec_core import services
from metarec_core.viz import figures as fig
from pages._shared import resources as res
from pages._shared.context import HANDOFF_USER, context, wait_for_model
from pages._shared.errors import error_boundary

ctx = context()
dataset = ctx.require_dataset()
st.title("Cold-Start Lab")
if ctx.model is None:
    wait_for_model(ctx, "The Cold-Start Lab")

from metarec_core.coldstart import METHODS  # noqa: E402 - only once a model exists

with st.spinner("Loading the cold-start model…"):  # once per server process and model
    model = res.coldstart_model(str(ctx.model.path), ctx.model.created)
items = res.catalogue(ctx.db, dataset)
inter = res.interactions(ctx.db, dataset)
st.caption(f"Model **{ctx.model.name}** · the users below were held out of its training.")

handoff = st.session_state.pop(HANDOFF_USER, None)
if handoff:
    st.session_state["cs_source"] = "Build a new user"
    st.session_state["cs_custom_items"] = [str(i) for i in handoff]
    st.toast(f"{len(handoff)} items from the map became a new user's history")

tab_user, tab_cohort = st.tabs(["One user", "Cohort of cold users"])


def _rank_change(v) -> str:
    if pd.isna(v):
        return "new"
    return "=" if v == 0 else (f"▲{int(v)}" if v > 0 else f"▼{int(-v)}")


def _show_list(col, title: str, df: pd.DataFrame, after: bool) -> None:
    col.markdown(f"**{title}**")
    view = df.assign(hit=df["hit"].map({True: "✓", False: ""}))
    cols = ["rank", "title", "category", "score", "hit"]
    if after:
        view["change"] = df["rank_change"].map(_rank_change)
        cols = ["rank", "change", "title", "category", "score", "hit", "because"]
    col.dataframe(
        view[cols],
        hide_index=True,
        key=f"cs_list_{'after' if after else 'before'}",
        column_config={"score": st.column_config.NumberColumn(format="%.3f")},
    )


held = services.held_out_users(ctx.model, inter, 1)


def _adapt_held_out(user: str, k: int, method: str, baseline: str, top: int) -> None:
    """Adapt to a real user's first k interactions (its later ones are the ground truth)."""
    history = inter[inter["user_id"] == user]
    if history.empty:
        st.error(f"No user '{user}' in {dataset}.")
        return
    if user not in set(held["user_id"]):
        st.warning(
            "This user was part of the model's training data: its later items are not a fair test."
        )
    with error_boundary("adapting to the user"):
        st.session_state["cs_result"] = services.adapt_held_out(
            model, items, history, k, method, baseline, top
        )


with tab_user:
    source = st.radio(
        "User", ["Held-out real user", "Build a new user"], horizontal=True, key="cs_source"
    )
    c1, c2, c3, c4 = st.columns(4)
    method = c1.selectbox("Method (after)", METHODS, index=0, key="cs_method")
    baseline = c2.selectbox("Before", METHODS, index=METHODS.index("no-adapt"), key="cs_baseline")
    top = c3.slider("Top-N", 5, 20, 10, key="cs_top")
    if source == "Held-out real user":
        k = c4.slider("k (support size)", 1, 10, 3, key="cs_k")
        a, b = st.columns(2)
        user = a.selectbox(
            "Held-out user",
            held["user_id"].tolist(),
            key="cs_user",
            format_func=lambda u: f"{u} ({int(held.set_index('user_id').loc[u, 'n_interactions'])} interactions)",
        )
        typed = b.text_input("…or any user id", key="cs_user_typed").strip()
        if typed:
            user = typed
        go = st.button("Adapt", type="primary", key="cs_adapt")
        if go:
            _adapt_held_out(str(user), int(k), method, baseline, int(top))
    else:
        picked = st.session_state.setdefault("cs_custom_items", [])
        text = st.text_input("Search the catalogue", key="cs_search")
        found = services.search_items(items, text, limit=30)
        titles = items.assign(item_id=items["item_id"].astype(str)).set_index("item_id")["title"]
        add = st.multiselect(
            "Add to the user's history (in order)",
            found["item_id"].astype(str).tolist(),
            format_func=lambda i: f"{titles.get(i, i)} ({i})",
            key="cs_add",
        )
        b1, b2 = st.columns(2)
        if b1.button("Add", key="cs_add_btn") and add:
            picked.extend(i for i in add if i not in picked)
        if b2.button("Clear history", key="cs_clear"):
            picked.clear()
        st.write("History: " + (" → ".join(str(titles.get(i, i)) for i in picked) or "empty"))
        if st.button("Adapt", type="primary", key="cs_adapt_new", disabled=not picked):
            with error_boundary("adapting to the new user"):
                st.session_state["cs_result"] = services.adapt_user(
                    model, items, list(picked), None, method, baseline, int(top)
                )

    r = st.session_state.get("cs_result")
    if r is not None:
        st.success(
            f"Adapted to **{r.user}** from {len(r.support)} item(s) in "
            f"{r.seconds * 1000:.0f} ms ({r.method} vs {r.baseline})."
        )
        if r.fallback:
            st.warning(
                "None of the support items is in the model's catalogue: popularity is shown."
            )
        if r.note:
            st.info(r.note)
        if len(r.metrics):
            m = st.columns(len(r.metrics))
            for col, (_, row) in zip(m, r.metrics.iterrows(), strict=False):
                gain = row["after"] - row["before"]
                col.metric(
                    f"{row['metric']} (after)",
                    f"{row['after']:.3f}",
                    f"{gain:+.3f} vs before" if abs(gain) >= 5e-4 else "same as before",
                    delta_color="normal" if abs(gain) >= 5e-4 else "off",
                    delta_arrow="auto" if abs(gain) >= 5e-4 else "off",
                )
        st.markdown("Support: " + " · ".join(r.support["title"].fillna(r.support["item_id"])))
        left, right = st.columns(2)
        _show_list(left, f"Before ({r.baseline})", r.before, after=False)
        _show_list(right, f"After ({r.method})", r.after, after=True)
        with st.expander("Why each recommendation? (support items that explain it)"):
            for _, row in r.after.iterrows():
                st.markdown(f"{row['rank']}. **{row['title']}** ← {row['because'] or '—'}")
        g1, g2 = st.columns(2)
        if r.losses:
            g1.plotly_chart(fig.loss_curve(r.losses), key="cs_loss")
        else:
            g1.caption(f"'{r.method}' has no inner loop (no loss curve).")
        g2.plotly_chart(fig.mix_before_after(r.mix_before, r.mix_after), key="cs_mix")
        if len(r.later):
            with st.expander(f"The user's later interactions ({len(r.later)})"):
                st.dataframe(r.later, hide_index=True, key="cs_later")

with tab_cohort:
    c1, c2, c3 = st.columns(3)
    n_users = c1.slider(
        "Cold users", 5, max(6, len(held)), min(100, max(6, len(held))), key="cs_co_n"
    )
    k_co = c2.slider("k", 1, 10, 3, key="cs_co_k")
    base_co = c3.selectbox("Gain over", METHODS, index=METHODS.index("no-adapt"), key="cs_co_base")
    methods = st.multiselect(
        "Methods",
        METHODS,
        default=["adapted", "finetune", "popularity", "ease"],
        key="cs_co_methods",
    )
    if st.button("Run cohort", type="primary", key="cs_co_run"):
        users = held["user_id"].head(n_users).tolist()
        with error_boundary("running the cohort"):
            st.session_state["cs_cohort"] = services.cohort(
                model, inter, users, int(k_co), methods, base_co
            )
    co = st.session_state.get("cs_cohort")
    if co is not None:
        st.caption(f"{co.per_user['user_id'].nunique()} users · k = {co.k} · {co.seconds:.1f} s")
        st.dataframe(co.summary, hide_index=True, key="cs_co_summary")
        a, b = st.columns(2)
        a.plotly_chart(fig.gains_distribution(co.per_user), key="cs_co_box")
        pick = b.selectbox("Gain of", sorted(co.gains["method"].unique()), key="cs_co_pick")
        b.plotly_chart(
            fig.gain_histogram(
                co.gains.loc[co.gains["method"] == pick, "gain"], f"NDCG@10 {pick} − {co.baseline}"
            ),
            key="cs_co_hist",
        )

_result, _cohort = st.session_state.get("cs_result"), st.session_state.get("cs_cohort")
st.download_button(
    "Download stakeholder report (HTML)",
    lambda: services.coldstart_report(_result, dataset, _cohort).encode(),  # built on click
    file_name=f"{dataset}-cold-start-report.html",
    mime="text/html",
    key="cs_report",
)
