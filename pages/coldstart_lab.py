"""Cold-Start Lab: what a new shopper sees before and after adaptation, click by click."""

import pandas as pd
import streamlit as st

from metarec_core import services
from metarec_core.viz import figures as fig
from pages._shared import resources as res
from pages._shared.context import HANDOFF_USER, context, wait_for_model
from pages._shared.errors import error_boundary
from pages._shared.plain import plain

ctx = context()
dataset = ctx.require_dataset()
st.title("Cold-Start Lab")
if ctx.model is None:
    wait_for_model(ctx, "The Cold-Start Lab")

from metarec_core.coldstart import METHODS  # noqa: E402 - only once a model exists

LABELS = {"popularity": "bestsellers (no history)", "adapted": "adapted (meta-learned)"}
with st.spinner("Loading the cold-start model…"):  # once per server process and model
    model = res.coldstart_model(str(ctx.model.path), ctx.model.created)
items = res.catalogue(ctx.db, dataset)
inter = res.interactions(ctx.db, dataset)
origin = (
    "trained automatically in the background on this shop's first start"
    if ctx.model.meta.get("label") == "demo models"
    else "trained on Training & Runs"
)
st.caption(
    f"Model {plain(ctx.model.name)}: {origin}; retrain it on Training & Runs. "
    "The shoppers below were held out of its training."
)
served_by = ctx.model  # the model that serves "after"
others = services.other_shop_models(res.paths(), dataset)
if others:
    pick = st.selectbox(
        "Serve with",
        [None, *others],
        format_func=lambda m: "this shop's model" if m is None else f"model from {m.dataset}",
        key="cs_model_from",
        help="A model trained on another shop knows this shop's products only by their text "
        "(New Shop compares it with text-only and in-shop methods).",
    )
    if pick is not None:
        with st.spinner("Reading this shop's products with the other shop's model…"):
            model = res.other_shop_model(str(pick.path), pick.created, ctx.db, dataset)
        served_by = pick
model_name = (
    served_by.name if served_by is ctx.model else f"{served_by.name} (from {served_by.dataset})"
)
served = (dataset, str(served_by.path), served_by.created)  # results are kept for this only

handoff = st.session_state.pop(HANDOFF_USER, None)
if handoff:
    st.session_state["cs_source"] = "Build a new shopper"
    st.session_state["cs_custom_items"] = [str(i) for i in handoff]
    st.toast(f"{len(handoff)} items from the map became a new shopper's history")

held = services.held_out_users(ctx.model, inter, 1)
# Shoppers with a full replay (ten actions and something after) first, then the rest.
long_enough = held["n_interactions"] > services.MAX_STEPS
held = pd.concat([held[long_enough].sort_values("user_id"), held[~long_enough]])
n_of = dict(zip(held["user_id"], held["n_interactions"], strict=True))


def _label(method: str) -> str:
    return LABELS.get(method, method)


def _kept(name: str, made_from: tuple):
    """The result kept under ``name`` while it was made from ``made_from``; else None (forgotten)."""
    if st.session_state.get(f"{name}_from") != made_from:
        st.session_state.pop(name, None)
    return st.session_state.get(name)


def _keep(name: str, made_from: tuple, result) -> None:
    st.session_state[name], st.session_state[f"{name}_from"] = result, made_from


def _served() -> dict:
    """What every result gets besides its inputs: this shop's bestsellers from its own log (the
    "before", whichever model serves) and the serving model's name."""
    return {"bestsellers": services.bestsellers(ctx.model, inter), "model_name": model_name}


def _user_history() -> tuple[str, list[str], pd.DataFrame | None]:
    """The chosen shopper: (name, ordered history, their rows; None for a hand-made one)."""
    source = st.radio(
        "Shopper",
        ["Held-out real shopper", "Build a new shopper"],
        horizontal=True,
        key="cs_source",
    )
    if source == "Held-out real shopper":
        a, b = st.columns(2)
        user = a.selectbox(
            "Held-out shopper",
            held["user_id"].tolist(),
            key="cs_user",
            format_func=lambda u: f"{u} ({n_of.get(u, 0)} actions)",
        )
        typed = b.text_input("…or any shopper id", key="cs_user_typed").strip()
        user = typed or str(user)
        rows = inter[inter["user_id"] == user].sort_values("position", kind="stable")
        if rows.empty:
            st.error(f"No shopper '{plain(user)}' in {plain(dataset)}.")
            st.stop()
        if user not in n_of:
            st.warning("This shopper was part of the model's training data: not a fair test.")
        return user, rows["item_id"].astype(str).tolist(), rows
    picked = st.session_state.setdefault("cs_custom_items", [])
    query = st.text_input("Search the catalogue", key="cs_search")
    found = services.search_items(items, query, 30)
    if found.empty:
        st.info(f"No product matches '{plain(query.strip())}'.")
    titles = items.assign(item_id=items["item_id"].astype(str)).set_index("item_id")["title"]
    add = st.multiselect(
        "Add to the shopper's history (in order)",
        found["item_id"].astype(str).tolist(),
        format_func=lambda i: f"{titles.get(i, i)} ({i})",
        key="cs_add",
    )
    b1, b2 = st.columns(2)
    if b1.button("Add", key="cs_add_btn") and add:
        picked.extend(i for i in add if i not in picked)
    if b2.button("Clear history", key="cs_clear"):
        picked.clear()
    st.text("History: " + (" → ".join(str(titles.get(i, i)) for i in picked) or "empty"))
    return "new shopper", list(picked), None


# Short labels and fixed widths so both lists fit side by side (~560 px each at 1600 px).
BOUGHT, BECAUSE = "bought later", "from the shopper's actions"
_COLUMNS = {
    "rank": st.column_config.NumberColumn("#", width=36),
    "change": st.column_config.TextColumn("change", width=60, help="Against the 'before' list"),
    "title": st.column_config.TextColumn("title", width=180),
    "category": st.column_config.TextColumn("category", width=90),
    BECAUSE: st.column_config.TextColumn(
        "because of", width=110, help="The shopper's actions that brought the product up"
    ),
    BOUGHT: st.column_config.TextColumn("bought", width=60, help="The shopper bought it later"),
}


def _show_list(col, title: str, df: pd.DataFrame, after: bool, known_later: bool) -> None:
    """One ranked list; the 'bought later' column only when the shopper's later actions are known."""
    col.markdown(f"**{title}**")
    view = df.assign(**{BOUGHT: df["hit"].map({True: "✓", False: ""}), BECAUSE: df["because"]})
    cols = (
        ["rank", "change", "title", "category", BECAUSE] if after else ["rank", "title", "category"]
    )
    view = view[cols + ([BOUGHT] if known_later else [])]
    col.dataframe(
        view,
        hide_index=True,
        column_config={c: _COLUMNS[c] for c in view.columns},
        key=f"cs_list_{'after' if after else 'before'}",
    )


def _before_after(user: str, history: list[str], rows: pd.DataFrame | None) -> None:
    c1, c2, c3, c4 = st.columns(4)
    method = c1.selectbox("After", METHODS, 0, format_func=_label, key="cs_method")
    baseline = c2.selectbox(
        "Before",
        METHODS,
        METHODS.index(services.BEFORE_DEFAULT),
        format_func=_label,
        key="cs_baseline",
        help="Bestsellers: what a brand-new shopper sees today. Or compare with another method "
        "given the same first k actions.",
    )
    top = c3.slider("Top-N", 5, 20, 10, key="cs_top")
    k = c4.slider("First k actions", 1, services.MAX_STEPS, 3, key="cs_k", disabled=rows is None)
    if rows is None:
        c4.caption("A built shopper uses their whole history.")
    made_from = (*served, user, tuple(history), None if rows is None else int(k))
    if st.button("Adapt", type="primary", key="cs_adapt", disabled=not history):
        with error_boundary("adapting to the shopper"):
            if rows is not None:
                r = services.adapt_held_out(
                    model, items, rows, int(k), method, baseline, int(top), **_served()
                )
            else:
                r = services.adapt_user(
                    model, items, history, None, method, baseline, int(top), user, **_served()
                )
            _keep("cs_result", made_from, r)
    r = _kept("cs_result", made_from)
    if r is None:
        return
    st.success(
        f"Adapted to {plain(r.user)} from {len(r.support)} action(s) with model "
        f"{plain(r.model)} in {r.seconds * 1000:.0f} ms: before = {_label(r.baseline)}, "
        f"after = {_label(r.method)}."
    )
    if r.fallback:
        st.warning("None of the shopper's actions is in the model's catalogue: bestsellers shown.")
    if r.skipped:
        st.info(f"{r.skipped} action(s) not in the model's catalogue were skipped.")
    if r.note:
        st.info(r.note)
    if len(r.metrics):
        for col, (_, row) in zip(st.columns(len(r.metrics)), r.metrics.iterrows(), strict=False):
            gain = row["after"] - row["before"]
            moved = abs(gain) >= 5e-4
            col.metric(
                f"{row['metric']} (after)",
                f"{row['after']:.3f}",
                f"{gain:+.3f} vs before" if moved else "same as before",
                delta_color="normal" if moved else "off",
                delta_arrow="auto" if moved else "off",
            )
    st.dataframe(r.support, hide_index=True, key="cs_support")
    left, right = st.columns(2)
    known_later = not r.later.empty
    _show_list(left, f"Before: {_label(r.baseline)}", r.before, False, known_later)
    _show_list(right, f"After: {_label(r.method)}", r.after, True, known_later)
    g1, g2 = st.columns(2)
    if r.losses:
        g1.plotly_chart(fig.loss_curve(r.losses), key="cs_loss")
    else:
        g1.caption(f"'{r.method}' has no inner loop (no loss curve).")
    g2.plotly_chart(fig.mix_before_after(r.mix_before, r.mix_after), key="cs_mix")


def _replay(user: str, history: list[str], rows: pd.DataFrame | None) -> None:
    st.caption(
        "Step 0 is what a brand-new shopper sees (bestsellers); each step adds the shopper's next "
        "action and adapts again. ✓ marks what the shopper bought later."
    )
    c1, c2, c3 = st.columns(3)
    method = c1.selectbox("Method", METHODS, 0, format_func=_label, key="cs_rp_method")
    steps = c2.slider("Actions to replay", 1, services.MAX_STEPS, services.MAX_STEPS, key="cs_rp_n")
    top = c3.slider("Top-N", 5, 20, 10, key="cs_rp_top")
    made_from = (*served, user, tuple(history))
    if st.button("Replay", type="primary", key="cs_rp_run", disabled=not history):
        with error_boundary("replaying the shopper's actions"):
            rp = services.replay(
                model, items, history, None, int(steps), method, int(top), user, **_served()
            )
            _keep("cs_replay", made_from, rp)
    rp = _kept("cs_replay", made_from)
    if rp is None:
        return
    if rp.note:
        st.info(rp.note)
    if rp.skipped:
        st.info(f"{rp.skipped} history item(s) not in the model's catalogue were skipped.")
    last = len(rp.frames) - 1
    step = st.slider("Step", 0, max(last, 1), last, key="cs_rp_step", disabled=last == 0)
    frame = rp.frames[min(step, last)]
    a, b, c = st.columns(3)
    a.metric("Step", f"{frame.step} of {last}")
    b.metric("Hits so far", frame.hits_so_far, help="Actions that the list just before them held")
    c.metric("Bought later, in this list", int(frame.recs["bought_later"].sum()))
    st.text(f"After: {frame.action}" if frame.step else "No history yet: bestsellers.")
    view = frame.recs.assign(
        **{"bought later": frame.recs["bought_later"].map({True: "✓", False: ""})}
    ).rename(columns={"because": "from the shopper's actions"})
    cols = ["rank", "change", "title", "category", "from the shopper's actions", "bought later"]
    st.dataframe(view[cols], hide_index=True, key="cs_rp_table")
    with st.expander("Every step at a glance"):
        st.dataframe(rp.summary(), hide_index=True, key="cs_rp_summary")
    st.caption(f"{last + 1} lists in {rp.seconds:.2f} s by model {plain(rp.model)}.")


def _cohort() -> None:
    c1, c2 = st.columns(2)
    n_users = c1.slider("Held-out shoppers", 5, max(6, len(held)), max(6, len(held)), key="cs_co_n")
    k_co = c2.slider("k", 1, services.MAX_STEPS, 3, key="cs_co_k")
    methods = st.multiselect(
        "Methods",
        METHODS,
        default=["adapted", "no-adapt", "popularity", "finetune", "ease"],
        format_func=_label,
        key="cs_co_methods",
    )
    if st.button("Run cohort", type="primary", key="cs_co_run"):
        users = held["user_id"].sort_values().head(n_users).tolist()
        with error_boundary("running the cohort"), st.spinner("Ranking the catalogue…"):
            co = services.cohort(model, inter, users, int(k_co), methods, **_served())
            _keep("cs_cohort", served, co)
    co = _kept("cs_cohort", served)
    if co is None:
        return
    st.caption(
        f"{co.per_user['user_id'].nunique()} shoppers · k = {co.k} · model {plain(co.model)} · "
        f"{co.seconds:.1f} s"
    )
    if len(co.lift):
        st.markdown("**Lift of adaptation, shopper by shopper** (NDCG@10, paired 95% interval)")
        st.dataframe(co.lift, hide_index=True, key="cs_co_lift")
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


user, history, rows = _user_history()
tab_ba, tab_replay, tab_cohort = st.tabs(["Before / after", "Replay, click by click", "Cohort"])
with tab_ba:
    _before_after(user, history, rows)
with tab_replay:
    _replay(user, history, rows)
with tab_cohort:
    _cohort()

_result, _cohort_res = st.session_state.get("cs_result"), st.session_state.get("cs_cohort")
_replay_res = st.session_state.get("cs_replay")
st.download_button(
    "Download stakeholder report (HTML)",
    lambda: services.coldstart_report(_result, dataset, _cohort_res, _replay_res).encode(),
    file_name=f"{dataset}-cold-start-report.html",
    mime="text/html",
    key="cs_report",
    on_click="ignore",
)
