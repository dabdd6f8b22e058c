"""The shared frame every page sees: sidebar (dataset, active model, device badge) and context."""

from __future__ import annotations

import functools
import glob
import os
import time
from dataclasses import dataclass

import streamlit as st

from metarec_core import jobs, services
from pages._shared import resources as res
from pages._shared.errors import error_boundary

DATASET_KEY = "app_dataset"
MODEL_KEY = "app_model"
# Hand-offs between pages (the Embedding Map fills them; the labs read and clear them).
HANDOFF_USER = "handoff_user_items"  # list of item ids: a new user's support
HANDOFF_CATEGORY = "handoff_category"  # (category name, list of item ids)


@dataclass(frozen=True)
class AppContext:
    """What a page needs to know about the current choice of data and model."""

    store: object | None
    dataset: str | None
    model: services.ModelInfo | None  # the active cold-start model
    db: str  # cache key of the store

    def require_dataset(self) -> str:
        if self.store is None or not self.dataset:
            st.info("No dataset yet: import the demo data from the start page.")
            st.stop()
        return self.dataset


@functools.lru_cache(maxsize=1)
def device_badge() -> str:
    """ "CPU" or the GPU's name; asks torch only when an NVIDIA device is visible (torch is slow to
    import and the first page must stay fast)."""
    if not glob.glob("/dev/nvidia[0-9]*") and not os.environ.get("CUDA_VISIBLE_DEVICES"):
        return "CPU"
    try:
        from metarec_core.device import device_label, resolve_device

        return device_label(resolve_device("auto"))
    except Exception:  # noqa: BLE001 - a badge must never break the page
        return "CPU"


def context() -> AppContext:
    """The current AppContext (reads the sidebar's session keys; cheap)."""
    store = res.get_store()
    names = services.dataset_names(store)
    dataset = st.session_state.get(DATASET_KEY)
    if dataset not in names:  # open on the demo shop when it is there
        dataset = services.DEMO_DATASET if services.DEMO_DATASET in names else (names or [None])[0]
    model = None
    if dataset:
        models = {m.name: m for m in services.list_models(res.paths(), dataset, "coldstart")}
        chosen = st.session_state.get(MODEL_KEY)
        model = models.get(chosen) or services.active_model(res.paths(), dataset, "coldstart")
    return AppContext(store, dataset, model, str(res.paths().db_path))


def sidebar() -> AppContext:
    """Draw the shared sidebar and return the context it selects."""
    ctx = context()
    names = services.dataset_names(ctx.store)
    with st.sidebar:
        st.markdown("### MetaRec")
        if names:
            st.selectbox(
                "Dataset",
                names,
                index=names.index(ctx.dataset) if ctx.dataset in names else 0,
                key=DATASET_KEY,
            )
            ctx = context()
            _model_picker(ctx)
            ctx = context()
        st.caption(f"Device: **{device_badge()}**")
        if ctx.dataset:
            with error_boundary("checking the demo model"):
                _auto_training(ctx)
    return ctx


def _model_picker(ctx: AppContext) -> None:
    models = services.list_models(res.paths(), ctx.dataset, "coldstart")
    if not models:
        st.caption("Active model: none yet")
        return
    labels = [m.name for m in models]
    current = ctx.model.name if ctx.model else labels[0]
    if st.session_state.get(MODEL_KEY) not in labels:
        st.session_state[MODEL_KEY] = current

    def _remember() -> None:
        chosen = {m.name: m for m in models}.get(st.session_state[MODEL_KEY])
        if chosen:
            services.set_active_model(res.paths(), chosen)

    st.selectbox("Active model", labels, key=MODEL_KEY, on_change=_remember)


def _auto_training(ctx: AppContext) -> None:
    """First start: train demo models in the background and show their progress here."""
    job_id = demo_job(ctx)
    if not job_id:
        return
    done_key = f"app_demo_seen_{job_id}"
    if st.session_state.get(done_key):
        return
    _demo_status(job_id, done_key, ctx.model is not None)


def demo_job(ctx: AppContext) -> str | None:
    """The id of the automatic demo-training job of the current dataset (started when the dataset
    has no cold-start model yet), or None (models exist, or METAREC_AUTOTRAIN=0)."""
    if os.environ.get("METAREC_AUTOTRAIN", "1") == "0" or not ctx.dataset:
        return None
    return services.ensure_demo_models(ctx.store, ctx.dataset, res.paths(), res.encoder_name())


def job_progress(view: jobs.JobView) -> None:
    """A job's progress bar: which model, which stage, how far, and the time left in the stage."""
    last = view.last or {}
    names = [t.name for t in view.spec.tasks]
    current = last.get("task") or names[min(len(view.models), len(names) - 1)]
    number = names.index(current) + 1 if current in names else 1
    step = f" {last.get('current', 0)}/{last.get('total', 0)}" if last.get("total") else ""
    text = f"model {number} of {len(names)} ({current}): "
    text += f"{last.get('stage', 'starting')}{step} {last.get('message', '')}".rstrip()
    st.progress(view.fraction, text=text)
    eta = f" · about {view.eta_s:.0f} s left in this stage" if view.eta_s else ""
    st.caption(f"{view.elapsed:.0f} s elapsed{eta}")


@st.fragment(run_every=2)
def _demo_status(job_id: str, done_key: str, had_model: bool) -> None:
    with error_boundary("reading the training progress"):
        view = jobs.read_job(job_id, res.paths())
        if view.active:
            st.markdown("**Training the demo models…**")
            job_progress(view)
            st.caption("The Cold-Start Lab opens as soon as its model is ready.")
        elif view.state == "done":
            st.session_state[done_key] = True
            st.success("Demo models ready.")
            if not had_model:  # unlock the labs; a page already unlocked is not interrupted
                time.sleep(0.2)
                st.rerun()
        else:
            st.session_state[done_key] = True
            st.warning(f"Demo training {view.state}: {view.error}. Retry from Training & Runs.")


def wait_for_model(ctx: AppContext, what: str) -> None:
    """The page-level state of a page that needs the cold-start model while there is none: the
    demo training's live progress (the page unlocks by itself), else a pointer to Training."""
    job_id = demo_job(ctx)
    view = jobs.read_job(job_id, res.paths()) if job_id else None
    if view is not None and view.active:
        st.info(
            f"**The demo model is training** in the background (a few minutes on a laptop "
            f"CPU). {what} opens by itself when it is ready; the other pages work meanwhile."
        )
        _page_progress(job_id, ctx.dataset)
    elif view is not None and view.state in ("failed", "cancelled"):
        st.warning(
            f"The automatic demo training {view.state}: {view.error}. "
            "Start a training run on **Training & Runs**."
        )
    else:
        st.info("No cold-start model for this dataset yet: train one on **Training & Runs**.")
    st.stop()


@st.fragment(run_every=2)
def _page_progress(job_id: str, dataset: str) -> None:
    with error_boundary("reading the training progress"):
        view = jobs.read_job(job_id, res.paths())
        ready = bool(services.list_models(res.paths(), dataset, "coldstart"))
        if view.active and not ready:
            job_progress(view)
        else:  # the cold-start model is there (the categories one may still train), or it failed
            st.rerun()
