"""New Category Lab: define categories from a few labelled products, check them, label more."""

import streamlit as st

from metarec_core import services
from metarec_core.services import category_lab as lab
from metarec_core.viz import figures as fig
from pages._shared import resources as res
from pages._shared.context import HANDOFF_CATEGORY, context, demo_job
from pages._shared.encoders import encoder as page_encoder
from pages._shared.errors import error_boundary
from pages._shared.plain import plain
from pages._shared.progress import StreamlitProgress

ctx = context()
dataset = ctx.require_dataset()
st.title("New Category Lab")
st.caption(
    "Few-shot classification with prototypes: a handful of labelled products per new category "
    "decides where every other product belongs, with a confidence and a 'none of these' option."
)
items = res.catalogue(ctx.db, dataset)
cats = res.categories_of(ctx.db, dataset)

if st.session_state.get("cat_search_dataset") != dataset:  # labels name this dataset's products
    st.session_state["cat_search_labels"] = {}
    st.session_state["cat_search_dataset"] = dataset

# ---- hand-off from the Embedding Map: a lasso selection becomes a labelled category ------------
handoff = st.session_state.pop(HANDOFF_CATEGORY, None)
if handoff:
    name, ids = handoff
    st.session_state["cat_mode"] = "Label products found by search"
    labels = st.session_state.setdefault("cat_search_labels", {})
    labels.update({str(i): name for i in ids})
    st.toast(f"{len(ids)} items from the map labelled '{name}'")

NO_MODEL = "Encoder prototypes (no meta-training)"
MODES = ["Treat existing categories as new", "Label products found by search"]
mode = st.radio("How to define the new categories", MODES, horizontal=True, key="cat_mode")

models = services.list_models(res.paths(), dataset, "categories")
choices = [NO_MODEL] + [m.name for m in models]
if not models and demo_job(ctx):
    st.info(
        "The demo category model is training in the background (progress in the sidebar); "
        "encoder prototypes (no meta-training) work meanwhile."
    )
c1, c2, c3 = st.columns([2, 1, 1])
model_choice = c1.selectbox("Model", choices, index=1 if models else 0, key="cat_model")
open_set = c2.toggle("Open set ('none of these')", value=False, key="cat_open")
k = c3.slider("k (labelled items per category)", 1, 10, 3, key="cat_k")
model, encoder_name = None, None
with error_boundary("loading the category model"):
    if model_choice != choices[0]:
        m = {x.name: x for x in models}[model_choice]
        model = res.category_model(str(m.path), m.created)
        encoder_name = lab.model_encoder_name(model)
        st.caption(f"Text encoder: {encoder_name} (the model's own: it was trained with it).")
        if note := lab.model_note(model):
            st.caption(note)
    else:
        options = lab.encoder_choices(res.encoder_name())
        encoder_name = st.selectbox(
            "Text encoder (speed or quality; embeddings are cached per encoder)",
            list(options),
            format_func=options.get,
            key="cat_encoder",
        )
if encoder_name is None:  # the model's encoder is missing: the line above says how to add it
    st.stop()
shift = 0.0
if open_set:
    shift = st.slider(
        "Open-set threshold: ← more products found (recall) · fewer, surer ones (precision) →",
        -0.15,
        0.15,
        0.0,
        0.01,
        key="cat_shift",
        help="Moves the similarity threshold from where the engine puts it (0).",
    )

if mode == MODES[0]:
    by_size = items["category"].value_counts()
    default = [c for c in by_size.index if by_size[c] > k + 1][:5]
    chosen = st.multiselect("Categories to treat as new", cats, default=default, key="cat_chosen")
    foreign = 0
    if open_set:
        foreign = st.slider(
            "Mix in products of other categories", 0, 500, 200, 50, key="cat_foreign"
        )
    seed = st.number_input("Seed", 0, 10_000, 0, key="cat_seed")
    if st.button("Run", type="primary", key="cat_run_btn"):
        with error_boundary("choosing the labelled examples"):
            labels, query, truth = services.category_task(items, chosen, k, int(seed), foreign)
            st.session_state["cat_task"] = {"labels": labels, "query": query, "truth": truth}
            st.session_state["cat_dirty"] = True
else:
    labels = st.session_state.setdefault("cat_search_labels", {})
    a, b = st.columns([1, 2])
    new_cat = a.text_input("Category name", value="my category", key="cat_new_name")
    text = b.text_input("Search the catalogue", key="cat_search")
    found = services.search_items(items, text, limit=30)
    if text.strip() and found.empty:
        st.info(f"No product matches '{plain(text.strip())}'.")
    titles = dict(zip(found["item_id"].astype(str), found["title"].astype(str), strict=True))
    pick = st.multiselect(
        "Products to label",
        list(titles),
        format_func=lambda i: f"{titles.get(i, '')} ({i})",
        key="cat_pick",
    )
    if st.button(
        f"Label selected as '{plain(new_cat)}'",
        key="cat_label_btn",
        disabled=not pick,
        help=None if pick else "Pick products to label first.",
    ):
        labels.update({str(i): new_cat for i in pick})
    if labels:
        st.dataframe(
            items.assign(item_id=items["item_id"].astype(str))
            .set_index("item_id")
            .loc[list(labels), ["title"]]
            .assign(category=list(labels.values())),
            key="cat_labels_table",
        )
        if st.button("Clear labels", key="cat_clear"):
            labels.clear()
            st.rerun()
    need = 1 if open_set else 2  # one category: which products belong to it (open set)
    if st.button(
        "Run", type="primary", key="cat_run_search", disabled=len(set(labels.values())) < need
    ):
        st.session_state["cat_task"] = {"labels": dict(labels), "query": None, "truth": None}
        st.session_state["cat_dirty"] = True
    if len(set(labels.values())) < need:
        st.caption(
            "Label products of at least two categories to run, "
            "or of one with the open set on (which products belong to it)."
        )

# ---- run (also after one-click labelling) ------------------------------------------------------
# results stand only for the settings they were computed with (the threshold slider re-runs)
settings = (dataset, model_choice, encoder_name, mode, open_set)
if mode == MODES[0]:
    settings += (tuple(chosen), k, int(seed), foreign)
else:
    settings += (tuple(sorted(labels.items())),)
if st.session_state.get("cat_result_for") != settings:
    st.session_state.pop("cat_result", None)
task = st.session_state.get("cat_task")
last = st.session_state.get("cat_result")
moved = last is not None and open_set and last.open_set and last.threshold_shift != shift
if task and (st.session_state.pop("cat_dirty", False) or moved):
    bar = StreamlitProgress("Embedding and classifying…")
    with error_boundary("classifying the products"):
        st.session_state["cat_result"] = services.classify_categories(
            items,
            task["labels"],
            task["query"],
            task["truth"],
            model,
            open_set,
            encoder=page_encoder(encoder_name),
            progress=bar,
            model_name=None if model is None else model_choice,
            threshold_shift=shift,
        )
        st.session_state["cat_result_for"] = settings
    bar.clear()

run = st.session_state.get("cat_result")
if run is None:
    changed = "cat_result_for" in st.session_state
    st.info(
        "The settings changed since the last run: press **Run** to see results for them."
        if changed
        else "Choose categories and press **Run**."
    )
    st.stop()

st.subheader("Results")
if run.script_warning:
    st.warning(run.script_warning)
st.caption(
    plain(
        f"{run.model_used} · encoder {run.encoder} · {len(run.predictions):,} products "
        f"classified in {run.seconds:.2f} s"
    )
)
figures = lab.headline(run)
if figures:
    for col, (label, value, help_text) in zip(st.columns(len(figures)), figures, strict=True):
        col.metric(label, value, help=help_text)
if len(run.categories) == 1:
    st.caption("Leave-one-out is not shown: with one category it is always right.")
if not run.truth_known:
    st.caption(
        "Ground truth is unknown for searched labels: the leave-one-out estimate and the "
        "support's confusion matrix are what you can judge."
    )

left, right = st.columns(2)
left.plotly_chart(
    fig.confusion_heatmap(
        run.confusion,
        "Confusion (query)" if run.truth_known else "Leave-one-out confusion (support)",
    ),
    key="cat_confusion",
)
right.plotly_chart(lab.confidence_figure(run), key="cat_conf_hist")
if run.open_set:
    right.caption("Products left of the threshold are 'none of these'.")

st.markdown("#### Label next")
st.caption("The most uncertain products: one click labels them and re-runs.")
task = st.session_state.get("cat_task") or {}
for n, row in run.label_next.head(6).iterrows():
    cols = st.columns([5, 2, 2])
    cols[0].write(f"**{row['title']}** — {row['reason']} (margin {row['margin']:.2f})")
    # one category: its side of the threshold can be labelled, "none of these" cannot
    options = [o for o in (row["best"], row["second"]) if o != services.NONE_OF_THESE]
    if task.get("truth") is not None:
        options = [task["truth"].get(str(row["item_id"]), row["best"])]
    for j, option in enumerate(options):
        if cols[1 + j].button(f"→ {option}", key=f"cat_ln_{n}_{j}"):
            if option == services.OTHER:
                task["query"] = [q for q in task["query"] if q != str(row["item_id"])]
            else:
                task["labels"][str(row["item_id"])] = option
                if task.get("query") is not None:
                    task["query"] = [q for q in task["query"] if q != str(row["item_id"])]
                if mode == MODES[1]:
                    st.session_state["cat_search_labels"][str(row["item_id"])] = option
            st.session_state["cat_dirty"] = True
            st.rerun()

st.markdown("#### Predicted members")
show = st.selectbox("Category", ["(all)", *run.categories, services.NONE], key="cat_show")
preds = (
    run.predictions if show == "(all)" else run.predictions[run.predictions["predicted"] == show]
)
st.dataframe(
    preds,
    hide_index=True,
    key="cat_preds",
    column_config={"confidence": st.column_config.ProgressColumn(min_value=0, max_value=1)},
)
with st.expander("Closest to each prototype / leave-one-out per labelled item"):
    st.dataframe(run.closest, hide_index=True, key="cat_closest")
    st.dataframe(run.loo, hide_index=True, key="cat_loo")

d1, d2 = st.columns(2)
d1.download_button(
    "Download predictions (CSV)",
    run.predictions.to_csv(index=False).encode(),
    file_name=f"{dataset}-new-categories.csv",
    mime="text/csv",
    key="cat_csv",
    on_click="ignore",
)
d2.download_button(
    "Download stakeholder report (HTML)",
    lambda: services.category_report(run, dataset).encode(),  # built on click
    file_name=f"{dataset}-new-categories-report.html",
    mime="text/html",
    key="cat_report",
    on_click="ignore",
)
