"""Training & Runs: launch meta-training in the background, watch it live, manage the models."""

import time

import pandas as pd
import streamlit as st

from metarec_core import jobs, services
from metarec_core.viz import figures as fig
from pages._shared import resources as res
from pages._shared.context import MODEL_KEY, context, device_badge, job_progress
from pages._shared.errors import error_boundary
from pages._shared.plain import plain

ctx = context()
dataset = ctx.require_dataset()
paths = res.paths()
st.title("Training & Runs")


def _start(kind: str, method: str, k: int, epochs: int, device: str, name: str) -> None:
    """Start a background job for the form's choices (ConflictError when the name is taken)."""
    is_cs = kind == "cold-start users"
    kind_id = "coldstart" if is_cs else "categories"
    config = (
        services.coldstart_overrides(method, int(k), int(epochs))
        if is_cs
        else {"episodes": int(epochs) * 100}
    )
    job_id = services.start_training(
        ctx.store,
        dataset,
        [(kind_id, name.strip() or services.default_model_name(kind_id), config)],
        device=device,
        encoder=res.encoder_name(),
        paths=paths,
        label=kind,
    )
    st.toast(f"Started job {job_id}")


# ---- launch ------------------------------------------------------------------------------------
with st.expander("Train a new model", expanded=not services.list_models(paths, dataset)):
    with st.form("tr_form"):
        kind = st.radio(
            "Model", ["cold-start users", "new categories"], horizontal=True, key="tr_kind"
        )
        c1, c2, c3, c4 = st.columns(4)
        method = c1.selectbox("Inner loop", services.TRAIN_METHODS, key="tr_method")
        k = c2.number_input("k (support size)", 1, services.TRAIN_K_MAX, 3, key="tr_k")
        epochs = c3.number_input("Epochs (categories: ×100 episodes)", 1, 50, 8, key="tr_epochs")
        devices = ["auto", "cpu"] + (["cuda"] if device_badge() != "CPU" else [])
        device = c4.selectbox("Device", devices, key="tr_device")
        name = st.text_input(
            "Model name (a new folder)", key="tr_name", placeholder="default: kind + date and time"
        )
        go = st.form_submit_button("Start training", type="primary")
    if go:
        with error_boundary("starting the training"):
            _start(kind, method, int(k), int(epochs), device, name)

# ---- jobs (live) -------------------------------------------------------------------------------
all_jobs = jobs.list_jobs(paths, dataset)
active = any(j.active for j in all_jobs)


def _job_panel(view: jobs.JobView) -> None:
    names = ", ".join(t.name for t in view.spec.tasks)
    label = plain(view.spec.label or "training")
    head = f"**{label}** → {plain(names)} · {view.state} · {view.elapsed:.0f} s"
    st.markdown(head)
    if view.active:
        job_progress(view)
        if st.button("Cancel", key=f"tr_cancel_{view.job_id}"):
            with error_boundary("cancelling the job"):
                jobs.cancel_job(view.job_id, paths)
                st.rerun()
    elif view.state == "failed":
        st.error(plain(view.error or "failed"))
        if view.log_tail:
            with st.expander("Details"):
                st.code(view.log_tail, language="text")
    series = view.metric_series("loss")
    if series:
        df = pd.DataFrame(series, columns=["stage", "step", "loss"])
        curves = {s: d["loss"].tolist() for s, d in df.groupby("stage", sort=False)}
        st.plotly_chart(fig.loss_curve(curves, "Training loss"), key=f"tr_loss_{view.job_id}")


@st.fragment(run_every=1.5 if active else None)
def _jobs_fragment() -> None:
    with error_boundary("reading the jobs"):
        views = jobs.list_jobs(paths, dataset)
        if not views:
            st.caption("No training jobs yet.")
            return
        for view in views[:5]:
            with st.container(border=True):
                _job_panel(view)
        finished = [v.job_id for v in views if not v.active]
        seen = st.session_state.setdefault("tr_seen_finished", set(finished))
        if set(finished) - seen:  # a job just finished: refresh the model lists
            st.session_state["tr_seen_finished"] = set(finished)
            time.sleep(0.1)
            st.rerun()


st.subheader("Jobs")
_jobs_fragment()

# ---- models ------------------------------------------------------------------------------------
st.subheader("Models")
models = services.list_models(paths, dataset)
if not models:
    st.info("No trained models for this dataset yet.")
    st.stop()
table = pd.DataFrame(
    [
        {
            "name": m.name,
            "kind": m.kind,
            "created": pd.to_datetime(m.created, unit="s"),
            "label": m.meta.get("label", ""),
            "items": m.n_items,
            "source": m.meta.get("source", "app"),
            "active": (services.active_model(paths, dataset, m.kind) or m).name == m.name,
        }
        for m in models
    ]
)
st.dataframe(table, hide_index=True, key="tr_models")
by_name = {m.name: m for m in models}
pick = st.selectbox("Model", list(by_name), key="tr_pick")
m = by_name[pick]
evaluation = services.evaluation_table(m)
if not evaluation.empty:
    st.markdown("**Evaluation on held-out cold users** (methods × k)")
    metric = st.selectbox(
        "Metric",
        [
            c
            for c in evaluation.columns
            if c not in ("method", "k", "n_users") and "_" not in c[-3:]
        ],
        key="tr_metric",
    )
    st.plotly_chart(fig.eval_chart(evaluation, metric), key="tr_eval_chart")
    st.dataframe(
        evaluation.pivot_table(index="method", columns="k", values=metric), key="tr_eval_table"
    )
report = services.training_report(m)
if report:
    with st.expander("Training report"):
        st.json(services.compact_report(report), expanded=1)
b1, b2, b3 = st.columns(3)
if b1.button("Make active", key="tr_activate"):
    services.set_active_model(paths, m)
    if m.kind == "coldstart":
        st.session_state[MODEL_KEY] = m.name
    st.success(f"{plain(m.name)} is now the active {m.kind} model.")
    st.rerun()
confirm = b3.checkbox("Yes, delete it", key="tr_confirm")
if b2.button("Delete", key="tr_delete", disabled=not confirm):
    with error_boundary(f"deleting {m.name}"):
        services.delete_model(paths, m)
        st.session_state.pop("tr_confirm", None)
        st.rerun()
