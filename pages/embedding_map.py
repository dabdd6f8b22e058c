"""Embedding Map: UMAP of item embeddings by category, prototypes, a user's adaptation, and a
lasso/box selection that becomes a new user's support or a new category."""

import pandas as pd
import streamlit as st

from metarec_core import services
from metarec_core.viz import figures as fig
from pages._shared import resources as res
from pages._shared.context import HANDOFF_CATEGORY, HANDOFF_USER, context
from pages._shared.errors import error_boundary
from pages._shared.plain import plain
from pages._shared.progress import StreamlitProgress

ctx = context()
dataset = ctx.require_dataset()
st.title("Embedding Map")
items = res.catalogue(ctx.db, dataset)

K_MAP = 3  # support size of a user picked on the map


def _adapted(user: str) -> tuple[services.AdaptResult, services.Replay] | None:
    """A held-out user adapted by the active model, with the replay of their first actions
    (kept for this session, per model and user)."""
    key = (ctx.model.name, user)
    memo = st.session_state.setdefault("map_adapted", {})
    if key not in memo:
        with error_boundary(f"adapting to user {user}"):
            model = res.coldstart_model(str(ctx.model.path), ctx.model.created, dataset)
            inter = res.interactions(ctx.db, dataset)
            history = inter[inter["user_id"] == user]
            memo.clear()  # one user at a time is enough
            memo[key] = (
                services.adapt_held_out(model, items, history, K_MAP),
                services.replay_held_out(model, items, history),
            )
    return memo.get(key)


c1, c2, c3 = st.columns([2, 1, 2])
n_max = len(items)
if n_max > 200:
    sample = c1.slider(
        "Items on the map (sample)",
        100,
        min(10_000, n_max),
        min(2000, n_max),
        step=100,
        key="map_sample",
    )
else:
    sample = n_max
    c1.caption(f"All {n_max} items are on the map.")
seed = c2.number_input("Sample seed", 0, 1000, 0, key="map_seed")
NOBODY, LAB_USER = "(nobody)", "the Cold-Start Lab's last user"
held = []
if ctx.model is not None:
    held = services.held_out_users(ctx.model, res.interactions(ctx.db, dataset), K_MAP)
    held = held["user_id"].head(300).tolist()
user_choice = c3.selectbox(
    "User on the map",
    [NOBODY, LAB_USER, *held],
    index=1,
    key="map_user",
    help=f"A held-out user is adapted by the active model from their first {K_MAP} items.",
    format_func=lambda u: u if u in (NOBODY, LAB_USER) else f"held-out user {u}",
)

bar = StreamlitProgress("Preparing the map…")
imap = services.item_map(
    items,
    sample,
    int(seed),
    encoder=res.encoder(res.encoder_name()),
    cache_dir=res.paths().cache_dir,
    progress=bar,
)
bar.clear()
st.caption(
    f"{len(imap.points):,} items · {'cached projection' if imap.cached else 'new projection'} · "
    f"{imap.seconds:.1f} s. Diamonds are category prototypes. Drag a lasso or a box to select."
)

overlays = [imap.prototypes]
result, replayed = None, None
if user_choice == LAB_USER:
    result, replayed = st.session_state.get("cs_result"), st.session_state.get("cs_replay")
elif user_choice != NOBODY:
    result, replayed = _adapted(str(user_choice)) or (None, None)
if result is not None or replayed is not None:
    overlays.append(
        services.map_overlay(
            imap,
            items,
            result.support["item_id"].astype(str).tolist() if result is not None else None,
            result.before if result is not None else None,
            result.after if result is not None else None,
            encoder=res.encoder(res.encoder_name()),
            steps=[f.recs for f in replayed.frames] if replayed is not None else None,
        )
    )
    if replayed is not None:
        st.caption(
            f"The dotted line is {plain(replayed.user)}'s path through the replay: where their list sits "
            f"after 0, 1, … {len(replayed.frames) - 1} actions."
        )
elif user_choice == LAB_USER:
    st.caption(
        "Adapt or replay a shopper in the Cold-Start Lab, or pick a held-out user above, to see "
        "it here (support ★, before/after ✕, recommended ○, path through the replay ●)."
    )

event = st.plotly_chart(
    fig.embedding_map(imap.points, pd.concat(overlays, ignore_index=True)),
    key="map_chart",
    on_select="rerun",
    selection_mode=("box", "lasso"),
)
points = (event or {}).get("selection", {}).get("points", []) if event else []
selected = [p["customdata"][0] for p in points if p.get("customdata")]
if selected:
    chosen = imap.points[imap.points["item_id"].isin(selected)]
    st.markdown(f"**{len(chosen)} items selected**")
    st.dataframe(chosen[["item_id", "title", "category"]], hide_index=True, key="map_selected")
    a, b = st.columns(2)
    if a.button("Use as a new user's history (Cold-Start Lab)", key="map_to_user"):
        st.session_state[HANDOFF_USER] = chosen["item_id"].tolist()[:20]
        st.switch_page("pages/coldstart_lab.py")
    name = b.text_input("New category name", "new category", key="map_cat_name")
    if b.button("Use as a new category (New Category Lab)", key="map_to_cat"):
        st.session_state[HANDOFF_CATEGORY] = (name, chosen["item_id"].tolist())
        st.switch_page("pages/category_lab.py")
