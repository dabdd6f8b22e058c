"""The thin API the app pages and background jobs call (no Streamlit here).

Every page makes one call into this module and renders what comes back: plain DataFrames and small
dataclasses on the CPU. Engine imports are lazy so the Overview page never pays for torch.
Sub-areas: datasets and queries, models and jobs, the cold-start lab, the new-category lab, the
embedding map. Cold-start and category specifics live in ``services_coldstart`` /
``services_categories`` style sections below.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from metarec_core.config import Paths
from metarec_core.errors import ConflictError, MetaRecError, NotFoundError, ValidationError
from metarec_core.types import Progress, ProgressEvent, no_progress

if TYPE_CHECKING:
    from metarec_core.data.store import Store

log = logging.getLogger(__name__)

DEMO_DATASET = "ml-100k"
COLD_FRACTION = 0.1  # of users held out as "new users" when a cold-start model is trained
MAX_COLD = 2000


# ==== datasets and queries =======================================================================
def open_store(paths: Paths | None = None) -> Store | None:
    """The store, read-only (jobs and the CLI may read it too); None when there is no store yet."""
    from metarec_core.data.store import Store

    path = (paths or Paths()).db_path
    if not Path(path).exists():
        return None
    return Store(path, read_only=True)


def dataset_names(store: Store | None) -> list[str]:
    """Names of the datasets in the store ([] when there is no store)."""
    if store is None:
        return []
    return [str(n) for n in store.list_datasets()["name"]]


def import_demo(paths: Paths | None = None, progress: Progress = no_progress) -> str:
    """Import the demo data (ml-100k) into the store; returns the dataset name.

    Uses the shared ml-100k folder when present (fast, offline), else the recbole wheel.
    The caller must have closed its own connection to the store (one writer per file).
    """
    from metarec_core.config import SHARED_DATASETS_DIR
    from metarec_core.data.store import Store

    paths = paths or Paths()
    with Store(paths.db_path) as store:
        if store.has_dataset(DEMO_DATASET):
            return DEMO_DATASET
        if (SHARED_DATASETS_DIR / DEMO_DATASET).is_dir():
            from metarec_core.data.importers import import_layout

            import_layout(store, DEMO_DATASET, progress=progress)
        else:
            from metarec_core.data.demo import import_demo as _import

            _import(store, progress=progress)
    return DEMO_DATASET


@dataclass(frozen=True)
class Overview:
    """What the Overview page shows for one dataset."""

    summary: dict[str, Any]
    per_user: pd.Series  # interactions per user
    categories: pd.DataFrame  # category, n_items, n_interactions, share
    over_time: pd.DataFrame  # bucket_lo, n_interactions, ...
    order_kind: str


def overview(store: Store, dataset: str, cold_k: int = 5) -> Overview:
    """Counts, the cold-user count, activity distribution, category mix and activity over time."""
    from metarec_core.data import queries as q

    summary = q.dataset_summary(store, dataset, cold_k).iloc[0].to_dict()
    activity = q.user_activity(store, dataset)
    info = store.info(dataset)
    by = "ts" if info.order_kind == "timestamp" else "position"
    over = q.interactions_over_order(store, dataset, by=by)
    if by == "ts":
        over["when"] = pd.to_datetime(over["bucket_lo"], unit="s")
    else:
        over["when"] = over["bucket_lo"]
    return Overview(
        summary={k: (v.item() if hasattr(v, "item") else v) for k, v in summary.items()},
        per_user=activity.set_index("user_id")["n_interactions"],
        categories=q.category_mix(store, dataset),
        over_time=over,
        order_kind=info.order_kind,
    )


ACTIVITY_BUCKETS: dict[str, tuple[int | None, int | None]] = {
    "any": (None, None),
    "cold (≤ 5)": (None, 5),
    "light (6–20)": (6, 20),
    "regular (21–100)": (21, 100),
    "heavy (> 100)": (101, None),
}


@dataclass(frozen=True)
class Slice:
    """A Data Explorer slice: matching interactions, their top items and per-category counts."""

    rows: pd.DataFrame
    top_items: pd.DataFrame
    categories: pd.DataFrame
    seconds: float


def explore(
    store: Store,
    dataset: str,
    category: str | None = None,
    activity: str = "any",
    ts_range: tuple[float, float] | None = None,
    limit: int = 2000,
) -> Slice:
    """Interactions filtered by category, user-activity bucket and time/order range."""
    from metarec_core.data import queries as q

    if activity not in ACTIVITY_BUCKETS:
        raise ValidationError(f"unknown activity bucket '{activity}'")
    lo, hi = ACTIVITY_BUCKETS[activity]
    t0 = time.perf_counter()
    rows = q.filtered_slice(
        store,
        dataset,
        category=category,
        min_activity=lo,
        max_activity=hi,
        ts_min=ts_range[0] if ts_range else None,
        ts_max=ts_range[1] if ts_range else None,
        limit=limit,
    )
    top = (
        rows.groupby(["item_id", "title", "category"], dropna=False)
        .size()
        .rename("n")
        .reset_index()
        .sort_values("n", ascending=False)
        .head(25)
    )
    cats = rows.groupby("category", dropna=False).size().rename("n").reset_index()
    return Slice(rows, top, cats, time.perf_counter() - t0)


def example_queries(dataset: str) -> dict[str, str]:
    """Ready-made analyst queries (the dataset's tables are reachable without a prefix)."""
    return {
        "Top 20 items": (
            "SELECT it.title, it.category, count(*) AS n\n"
            "FROM interactions i JOIN items it USING (item_id)\n"
            "GROUP BY ALL ORDER BY n DESC LIMIT 20"
        ),
        "Interactions per category": (
            "SELECT it.category, count(*) AS n, count(DISTINCT i.user_id) AS users\n"
            "FROM interactions i JOIN items it USING (item_id)\n"
            "GROUP BY ALL ORDER BY n DESC"
        ),
        "Cold users (≤ 5 interactions)": (
            "SELECT user_id, count(*) AS n FROM interactions\n"
            "GROUP BY user_id HAVING count(*) <= 5 ORDER BY n"
        ),
        "Activity distribution": (
            "SELECT n, count(*) AS users FROM\n"
            "  (SELECT user_id, count(*) AS n FROM interactions GROUP BY user_id)\n"
            "GROUP BY n ORDER BY n"
        ),
        "Items never interacted with": (
            "SELECT item_id, title, category FROM items\n"
            "WHERE item_id NOT IN (SELECT item_id FROM interactions) LIMIT 100"
        ),
    }


@dataclass(frozen=True)
class SqlResult:
    """An analyst query's rows and timing, or the clear message of why it was refused."""

    frame: pd.DataFrame
    seconds: float
    truncated: bool = False
    error: str | None = None


def run_sql(store: Store, sql: str, dataset: str | None = None, limit: int = 10_000) -> SqlResult:
    """Run one read-only SELECT; bad or forbidden SQL comes back as ``error`` (never raised)."""
    from metarec_core.data.queries import run_analyst_sql

    t0 = time.perf_counter()
    try:
        r = run_analyst_sql(store, sql, dataset=dataset, limit=limit)
    except MetaRecError as exc:
        return SqlResult(pd.DataFrame(), time.perf_counter() - t0, False, str(exc))
    return SqlResult(r.frame, r.elapsed_s, r.truncated)


def catalogue(store: Store, dataset: str) -> pd.DataFrame:
    """Items with their interaction counts (popularity), for search boxes and labels."""
    items = store.items(dataset)
    inter = store.interactions(dataset)
    pop = inter.groupby("item_id").size().rename("popularity")
    items = items.merge(pop, left_on="item_id", right_index=True, how="left")
    items["popularity"] = items["popularity"].fillna(0).astype(int)
    return items


def search_items(items: pd.DataFrame, text: str, limit: int = 50) -> pd.DataFrame:
    """Catalogue rows whose title, category or id contain every word of ``text`` (popular first)."""
    words = [w for w in str(text).lower().split() if w]
    if not words:
        return items.sort_values("popularity", ascending=False).head(limit)
    hay = (
        items["title"].astype(str)
        + " "
        + items["category"].fillna("").astype(str)
        + " "
        + items["item_id"].astype(str)
    ).str.lower()
    mask = np.ones(len(items), dtype=bool)
    for w in words:
        mask &= hay.str.contains(w, regex=False).to_numpy()
    return items[mask].sort_values("popularity", ascending=False).head(limit)


# ==== models, jobs and training ==================================================================
@dataclass(frozen=True)
class ModelInfo:
    """A trained model directory and what is known about it."""

    name: str
    dataset: str
    kind: str  # "coldstart" | "categories"
    path: Path
    created: float
    meta: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.created))
        return f"{self.name} ({when})"


def list_models(
    paths: Paths | None = None, dataset: str | None = None, kind: str | None = None
) -> list[ModelInfo]:
    """Trained models (newest first), optionally of one dataset and kind."""
    paths = paths or Paths()
    root = paths.models_dir
    out: list[ModelInfo] = []
    if not root.exists():
        return out
    for meta_file in root.glob("*/*/metarec_meta.json"):
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError):
            continue
        d = meta_file.parent
        if ".partial-" in d.name:
            continue
        info = ModelInfo(
            name=d.name,
            dataset=d.parent.name,
            kind=str(meta.get("kind", "coldstart")),
            path=d,
            created=float(meta.get("created", d.stat().st_mtime)),
            meta=meta,
        )
        if (dataset is None or info.dataset == dataset) and (kind is None or info.kind == kind):
            out.append(info)
    return sorted(out, key=lambda m: m.created, reverse=True)


def _active_file(paths: Paths) -> Path:
    return paths.models_dir / "active.json"


def active_model(paths: Paths | None, dataset: str, kind: str = "coldstart") -> ModelInfo | None:
    """The model chosen as active for (dataset, kind), else the newest one, else None."""
    paths = paths or Paths()
    models = list_models(paths, dataset, kind)
    if not models:
        return None
    try:
        chosen = json.loads(_active_file(paths).read_text()).get(f"{dataset}/{kind}")
    except (OSError, ValueError):
        chosen = None
    for m in models:
        if m.name == chosen:
            return m
    return models[0]


def set_active_model(paths: Paths | None, model: ModelInfo) -> None:
    """Remember ``model`` as the active one for its dataset and kind."""
    paths = paths or Paths()
    f = _active_file(paths)
    try:
        data = json.loads(f.read_text())
    except (OSError, ValueError):
        data = {}
    data[f"{model.dataset}/{model.kind}"] = model.name
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(f)


def delete_model(paths: Paths | None, model: ModelInfo) -> None:
    """Delete a model directory (refused while a job writes it)."""
    from metarec_core.jobs import _lock_path, _read_json, pid_alive

    paths = paths or Paths()
    lock = _lock_path(paths, model.dataset, model.name)
    if lock.exists() and pid_alive((_read_json(lock) or {}).get("pid")):
        raise ConflictError(f"model '{model.name}' is being written by a job")
    if paths.models_dir.resolve() not in model.path.resolve().parents:
        raise ValidationError(f"refusing to delete {model.path}: not under {paths.models_dir}")
    shutil.rmtree(model.path)


def evaluation_table(model: ModelInfo) -> pd.DataFrame:
    """The model's evaluation report as a methods × k table (empty when there is none)."""
    f = model.path / "evaluation.json"
    if not f.exists():
        return pd.DataFrame()
    try:
        rows = json.loads(f.read_text()).get("rows", [])
    except (OSError, ValueError):
        return pd.DataFrame()
    return pd.DataFrame(rows)


def default_model_name(kind: str) -> str:
    """A fresh model directory name, e.g. coldstart-20261123-0915."""
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def start_training(
    store: Store,
    dataset: str,
    tasks: list[tuple[str, str, dict]],
    device: str = "auto",
    encoder: str = "minilm",
    paths: Paths | None = None,
    label: str = "",
    auto: bool = False,
    evaluate: bool = True,
) -> str:
    """Start a background job training ``tasks`` = [(kind, name, config overrides)]; its id."""
    from metarec_core.jobs import JobSpec, TrainTask, start_job

    spec = JobSpec(
        dataset=dataset,
        tasks=tuple(TrainTask(k, n, dict(c), evaluate) for k, n, c in tasks),
        device=device,
        encoder=encoder,
        label=label,
        auto=auto,
    )
    frames = {"interactions": store.interactions(dataset), "items": store.items(dataset)}
    return start_job(spec, frames, paths)


# Settings of the models trained automatically on first start (a minute or two on 2 cores).
DEMO_COLDSTART: dict = {}
DEMO_CATEGORIES = {"episodes": 400}

TRAIN_METHODS = ["Meta-SGD (learned inner rates)", "MAML (second order)", "First-order MAML"]


def coldstart_overrides(method: str, k: int, epochs: int) -> dict:
    """ColdStartConfig overrides for the Training page's choices."""
    if method not in TRAIN_METHODS:
        raise ValidationError(f"unknown training method '{method}'")
    return {
        "k": int(k),
        "epochs": int(epochs),
        "learn_inner_lr": method == TRAIN_METHODS[0],
        "first_order": method == TRAIN_METHODS[2],
    }


def ensure_demo_models(
    store: Store, dataset: str, paths: Paths | None = None, encoder: str = "minilm"
) -> str | None:
    """Start the automatic first-run training when ``dataset`` has no cold-start model yet.

    Returns the id of the job that trains (or trained) the demo models, None when models exist
    or an earlier automatic attempt for this dataset failed (the user can retry in Training).
    """
    from metarec_core.jobs import list_jobs

    paths = paths or Paths()
    jobs = [j for j in list_jobs(paths, dataset) if j.spec.auto]
    if jobs and jobs[0].active:
        return jobs[0].job_id
    if list_models(paths, dataset, "coldstart"):
        return jobs[0].job_id if jobs and time.time() - (jobs[0].finished or 0) < 30 else None
    if jobs:  # an automatic attempt ended without a model: do not loop; Training offers a retry
        return jobs[0].job_id
    tasks = [("coldstart", "demo-coldstart", dict(DEMO_COLDSTART))]
    if not list_models(paths, dataset, "categories"):
        tasks.append(("categories", "demo-categories", dict(DEMO_CATEGORIES)))
    try:
        return start_training(
            store, dataset, tasks, encoder=encoder, paths=paths, label="demo models", auto=True
        )
    except ConflictError:
        return None


def _config(cls, overrides: dict, **extra):
    """Build an engine config from overrides, ignoring keys it does not know."""
    from dataclasses import fields

    names = {f.name for f in fields(cls)}
    merged = {**extra, **overrides}
    unknown = sorted(set(merged) - names)
    if unknown:
        log.warning("ignoring unknown %s settings: %s", cls.__name__, ", ".join(unknown))
    return cls(**{k: v for k, v in merged.items() if k in names})


def train_task(spec, task, frames: dict[str, pd.DataFrame], out_dir: Path, progress: Progress):
    """Train one job task into ``out_dir`` (called by the job worker process)."""
    items = frames["items"]
    if task.kind == "categories":
        from metarec_core.categories import CategoryConfig, train_category_model

        cfg = _config(CategoryConfig, task.config, encoder=spec.encoder, device=spec.device)
        model = train_category_model(items, cfg, progress)
        model.save(out_dir)
        return
    _train_coldstart(spec, task, frames, out_dir, progress)


# ==== the new-category lab =======================================================================
def load_category_model(path: Path):
    """A trained category model from its directory."""
    from metarec_core.categories import CategoryModel

    return CategoryModel.load(path)


def category_task(
    items: pd.DataFrame,
    categories: list[str],
    k: int,
    seed: int = 0,
    foreign: int = 0,
) -> tuple[dict[str, str], list[str], pd.Series]:
    """Treat existing categories as new: k labelled items each, the rest as queries with truth.

    Args:
        categories: the categories to pretend are new (at least 2).
        k: labelled examples per category (its other items become queries).
        foreign: also mix in this many items of *other* categories (truth "(other)") to judge
            the open-set "none of these" answer.
    Returns (labels item_id -> category, query item ids, truth per query item id).
    """
    if len(categories) < 2:
        raise ValidationError("choose at least 2 categories to treat as new")
    rng = np.random.default_rng(seed)
    items = items[items["title"].astype(str).str.strip() != ""]
    labels: dict[str, str] = {}
    truth: dict[str, str] = {}
    for cat in categories:
        ids = items.loc[items["category"] == cat, "item_id"].astype(str).to_numpy()
        if len(ids) < k + 1:
            raise ValidationError(
                f"category '{cat}' has {len(ids)} item(s); need more than k = {k}"
            )
        ids = rng.permutation(ids)
        labels.update({i: cat for i in ids[:k]})
        truth.update({i: cat for i in ids[k:]})
    if foreign:
        others = items.loc[~items["category"].isin(categories), "item_id"].astype(str).to_numpy()
        for i in rng.permutation(others)[:foreign]:
            truth[i] = OTHER
    return labels, list(truth), pd.Series(truth, name="truth")


OTHER = "(other)"  # truth of an item from none of the new categories
NONE = "(none of these)"  # the open-set answer


@dataclass
class CategoryRun:
    """Everything the New Category Lab shows after one run."""

    labels: dict[str, str]
    predictions: pd.DataFrame  # item_id, title, predicted, confidence[, truth, correct]
    categories: list[str]
    accuracy: float | None
    macro_f1: float | None
    loo_accuracy: float | None
    loo: pd.DataFrame
    confusion: pd.DataFrame
    label_next: pd.DataFrame
    closest: pd.DataFrame
    open_set: bool
    threshold: float | None
    open_metrics: dict[str, float]
    model_used: str
    seconds: float
    truth_known: bool


def classify_categories(
    items: pd.DataFrame,
    labels: dict[str, str],
    query_ids: list[str] | None = None,
    truth: pd.Series | None = None,
    model=None,
    open_set: bool = False,
    encoder=None,
    progress: Progress = no_progress,
) -> CategoryRun:
    """Few-shot classify ``query_ids`` (default: every unlabelled item) into the labelled categories.

    ``labels`` maps item id -> category (k per category); ``truth`` (item id -> category or
    OTHER) enables accuracy, macro-F1, the query confusion matrix and open-set precision/recall.
    """
    from metarec_core import categories as cat_engine

    t0 = time.perf_counter()
    if len({c for c in labels.values()}) < 2:
        raise ValidationError("label items of at least 2 categories first")
    by_id = items.assign(item_id=items["item_id"].astype(str)).set_index("item_id")
    missing = [i for i in labels if i not in by_id.index]
    if missing:
        raise NotFoundError(f"{len(missing)} labelled item(s) are not in the catalogue")
    support = pd.DataFrame(
        {
            "item_id": list(labels),
            "title": by_id.loc[list(labels), "title"].to_numpy(),
            "category": list(labels.values()),
        }
    )
    if query_ids is None:
        query_ids = [i for i in by_id.index if i not in labels]
    query_ids = [str(i) for i in query_ids if str(i) not in labels]
    query = pd.DataFrame({"item_id": query_ids, "title": by_id.loc[query_ids, "title"].to_numpy()})
    result = cat_engine.classify(
        support, query, model=model, open_set=open_set, encoder=encoder, progress=progress
    )
    preds = result.predictions.merge(query, on="item_id", how="left")
    preds["predicted"] = preds["category"].fillna(NONE)
    preds = preds.drop(columns=["category"])
    acc = f1 = None
    open_metrics: dict[str, float] = {}
    if truth is not None:
        preds["truth"] = preds["item_id"].map(truth).fillna(OTHER)
        preds["correct"] = preds["predicted"] == preds["truth"]
        inset = preds[preds["truth"] != OTHER]
        acc = float(inset["correct"].mean()) if len(inset) else None
        f1 = _macro_f1(inset["truth"], inset["predicted"], result.categories)
        conf = pd.crosstab(preds["truth"], preds["predicted"])
        if open_set:
            open_metrics = _open_set_metrics(preds)
    else:
        conf = cat_engine.confusion(result)
    cols = ["item_id", "title", "predicted", "confidence"] + (
        ["truth", "correct"] if truth is not None else []
    )
    return CategoryRun(
        labels=dict(labels),
        predictions=preds[cols].sort_values("confidence", ascending=False).reset_index(drop=True),
        categories=list(result.categories),
        accuracy=acc,
        macro_f1=f1,
        loo_accuracy=result.leave_one_out,
        loo=cat_engine.leave_one_out(result),
        confusion=conf,
        label_next=cat_engine.label_next(result, n=10),
        closest=cat_engine.closest_to_prototypes(result, n=5),
        open_set=open_set,
        threshold=result.threshold,
        open_metrics=open_metrics,
        model_used=result.model_used,
        seconds=time.perf_counter() - t0,
        truth_known=truth is not None,
    )


def _macro_f1(truth: pd.Series, pred: pd.Series, categories: list[str]) -> float | None:
    if truth.empty:
        return None
    scores = []
    for c in categories:
        tp = float(((pred == c) & (truth == c)).sum())
        fp = float(((pred == c) & (truth != c)).sum())
        fn = float(((pred != c) & (truth == c)).sum())
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / max(2 * tp + fp + fn, 1e-12))
    return float(np.mean(scores)) if scores else None


def _open_set_metrics(preds: pd.DataFrame) -> dict[str, float]:
    """Precision/recall of the new categories among all products, and foreign rejection."""
    accepted = preds["predicted"] != NONE
    inset = preds["truth"] != OTHER
    right = accepted & preds["correct"]
    out = {
        "precision": float(right.sum() / max(accepted.sum(), 1)),
        "recall": float(right.sum() / max(inset.sum(), 1)),
    }
    if (~inset).any():
        out["foreign rejected"] = float((~accepted & ~inset).sum() / (~inset).sum())
    return out


def category_report(run: CategoryRun, dataset: str) -> str:
    """The New Category Lab's results as a self-contained HTML report."""
    from metarec_core.report import Section, build_report
    from metarec_core.viz import figures as fig

    cards = {
        "categories": len(run.categories),
        "labelled items": len(run.labels),
        "leave-one-out accuracy": run.loo_accuracy,
    }
    if run.truth_known:
        cards.update({"accuracy": run.accuracy, "macro-F1": run.macro_f1})
    cards.update(run.open_metrics)
    sections = [
        Section(
            "Summary",
            [
                f"New categories: {', '.join(run.categories)}. Model: {run.model_used}. "
                + (
                    "Open set: items below the threshold are 'none of these'."
                    if run.open_set
                    else ""
                ),
                cards,
            ],
        ),
        Section("Confusion matrix", [fig.confusion_heatmap(run.confusion)]),
        Section(
            "Confidence",
            [
                fig.confidence_histogram(
                    run.predictions.rename(columns={"predicted": "category"}), run.threshold
                )
            ],
        ),
        Section("Predicted members (most confident first)", [run.predictions]),
        Section("Items worth labelling next", [run.label_next]),
        Section(
            "Labelled examples",
            [pd.DataFrame({"item_id": list(run.labels), "category": list(run.labels.values())})],
        ),
    ]
    return build_report(f"New categories · {dataset}", sections, subtitle=dataset)


# ==== the embedding map ==========================================================================
@dataclass
class ItemMap:
    """Sampled items placed on a 2-D UMAP map of their text embeddings."""

    points: pd.DataFrame  # item_id, title, category, x, y
    vectors: np.ndarray  # (N, D) embeddings of the points, same order
    projection: Any  # viz.projection.Projection
    prototypes: pd.DataFrame  # x, y, label, kind="prototype"
    seconds: float
    cached: bool


def _texts(items: pd.DataFrame) -> list[str]:
    col = "text" if "text" in items.columns else "title"
    return items[col].fillna("").astype(str).tolist()


def item_map(
    items: pd.DataFrame,
    sample: int = 2000,
    seed: int = 0,
    encoder=None,
    cache_dir: Path | None = None,
    progress: Progress = no_progress,
    n_prototypes: int = 20,
) -> ItemMap:
    """Embed (cached) a sample of the catalogue and project it with UMAP (cached).

    Category prototypes (mean embedding of each of the ``n_prototypes`` largest categories) are
    placed where their most similar items lie.
    """
    from metarec_core.embed.service import embed_texts
    from metarec_core.viz.projection import ProjectionParams, project

    cache_dir = Path(cache_dir) if cache_dir is not None else Paths().cache_dir
    t0 = time.perf_counter()
    if len(items) > sample:
        items = items.sample(n=sample, random_state=seed)
    items = items.sort_values("item_id").reset_index(drop=True)
    vectors = embed_texts(_texts(items), encoder=encoder, cache_dir=cache_dir, progress=progress)
    proj = project(
        items["item_id"].astype(str).to_numpy(),
        vectors,
        ProjectionParams(seed=seed),
        cache_dir=cache_dir / "projections",
        progress=progress,
    )
    points = items[["item_id", "title", "category"]].copy()
    points["item_id"] = points["item_id"].astype(str)
    points["x"], points["y"] = proj.coords[:, 0], proj.coords[:, 1]
    protos = []
    top = items["category"].value_counts().head(n_prototypes).index
    for cat in top:
        mask = (items["category"] == cat).to_numpy()
        protos.append((cat, vectors[mask].mean(0)))
    proto_xy = proj.place(np.stack([v for _, v in protos]), vectors) if protos else np.zeros((0, 2))
    prototypes = pd.DataFrame(
        {
            "x": proto_xy[:, 0] if len(protos) else [],
            "y": proto_xy[:, 1] if len(protos) else [],
            "label": [c for c, _ in protos],
            "kind": "prototype",
        }
    )
    return ItemMap(points, vectors, proj, prototypes, time.perf_counter() - t0, proj.cached)


def map_overlay(
    imap: ItemMap,
    items: pd.DataFrame,
    support_ids: list[str] | None = None,
    before: pd.DataFrame | None = None,
    after: pd.DataFrame | None = None,
    encoder=None,
    top: int = 10,
) -> pd.DataFrame:
    """Markers for a user on the map: support items, recommended items, and the user itself
    before / after adaptation (placed at the rank-weighted centre of its top recommendations)."""
    from metarec_core.embed.service import embed_texts

    rows: list[dict] = []
    pos = dict(
        zip(
            imap.points["item_id"],
            zip(imap.points["x"], imap.points["y"], strict=True),
            strict=True,
        )
    )
    by_id = items.assign(item_id=items["item_id"].astype(str)).drop_duplicates("item_id")
    by_id = by_id.set_index("item_id")

    def _xy(ids: list[str]) -> dict[str, tuple[float, float]]:
        ids = [i for i in map(str, ids) if i in by_id.index]
        out = {i: pos[i] for i in ids if i in pos}
        rest = [i for i in ids if i not in pos]
        if rest:
            vec = embed_texts(_texts(by_id.loc[rest].reset_index()), encoder=encoder)
            for i, (x, y) in zip(rest, imap.projection.place(vec, imap.vectors), strict=True):
                out[i] = (float(x), float(y))
        return out

    def _add(ids, kind):
        xy = _xy(list(ids))
        for i in ids:
            if str(i) in xy:
                x, y = xy[str(i)]
                rows.append(
                    {
                        "x": x,
                        "y": y,
                        "label": str(by_id.loc[str(i), "title"]),
                        "kind": kind,
                        "item_id": str(i),
                    }
                )

    if support_ids:
        _add(support_ids, "support")
    for name, recs in (("before", before), ("after", after)):
        if recs is None or recs.empty:
            continue
        ids = recs.sort_values("rank")["item_id"].astype(str).head(top).tolist()
        if name == "after":
            _add(ids, "recommended")
        xy = _xy(ids)
        pts = [(xy[i], 1.0 / (r + 1)) for r, i in enumerate(ids) if i in xy]
        if pts:
            w = np.array([p[1] for p in pts])
            c = np.average(np.array([p[0] for p in pts]), axis=0, weights=w)
            rows.append(
                {
                    "x": float(c[0]),
                    "y": float(c[1]),
                    "label": f"user {name} adaptation",
                    "kind": name,
                    "item_id": "",
                }
            )
    return pd.DataFrame(rows, columns=["x", "y", "label", "kind", "item_id"])


# ==== the cold-start lab =========================================================================
TEST_COLDSTART = {"epochs": 2, "dim": 16, "batch_size": 32, "neighbours": 20, "k_max": 5}
EVAL_KS = (1, 3, 5, 10)
COLD_USERS_FILE = "cold_users.json"


def load_coldstart(path: Path, device: str = "auto"):
    """A trained cold-start model from its directory."""
    from metarec_core.coldstart import ColdStartModel

    return ColdStartModel.load(path, device=device)


def _train_coldstart(spec, task, frames, out_dir: Path, progress: Progress) -> None:
    """Hold out cold users, meta-train on the warm ones, save, and evaluate on the cold ones."""
    from metarec_core.coldstart import ColdStartConfig, train_model
    from metarec_core.data.splits import split_users

    inter, items = frames["interactions"], frames["items"]
    cfg = _config(ColdStartConfig, task.config, device=spec.device)
    split = split_users(inter, COLD_FRACTION, MAX_COLD, seed=cfg.seed, min_interactions=cfg.k + 1)
    warm = inter[inter["user_id"].isin(split.warm)]
    encoder = None
    if spec.encoder != "minilm":  # MiniLM goes through the persistent cache when None
        from metarec_core.embed.encoder import get_encoder

        encoder = get_encoder(spec.encoder)
    model = train_model(warm, items, cfg, progress, encoder)
    model.save(out_dir)
    (out_dir / COLD_USERS_FILE).write_text(json.dumps(split.cold))
    if task.evaluate and split.cold:
        cold = inter[inter["user_id"].isin(split.cold)]
        table = evaluate_model(model, cold, progress=progress)
        (out_dir / "evaluation.json").write_text(
            json.dumps({"rows": table.to_dict("records")}, indent=1)
        )


def per_user_metrics(
    model, interactions: pd.DataFrame, k: int, methods, users: list[str] | None = None
) -> pd.DataFrame:
    """HR@10, NDCG@10 and Recall@20 of each method for each user (support = first k)."""
    from metarec_core.data.splits import support_query
    from metarec_core.evaluate.metrics import hr_at_k, ndcg_at_k, recall_at_k

    if users is not None:
        interactions = interactions[interactions["user_id"].isin(users)]
    support, query = support_query(interactions, k)
    if support.empty:
        return pd.DataFrame(columns=["user_id", "method", "hr@10", "ndcg@10", "recall@20"])
    relevant = query.groupby("user_id")["item_id"].apply(set)
    rows = []
    for method in methods:
        recs = model.recommend(support[["user_id", "item_id", "position"]], top=20, method=method)
        ranked = recs.frame.sort_values(["user_id", "rank"]).groupby("user_id")["item_id"]
        for user, items in ranked:
            rel, lst = relevant.get(user, set()), items.tolist()
            rows.append(
                (user, method, hr_at_k(lst, rel), ndcg_at_k(lst, rel), recall_at_k(lst, rel))
            )
    return pd.DataFrame(rows, columns=["user_id", "method", "hr@10", "ndcg@10", "recall@20"])


def evaluate_model(
    model, cold: pd.DataFrame, ks=EVAL_KS, methods=None, progress: Progress = no_progress
) -> pd.DataFrame:
    """Methods × k table (mean and 95% interval) on the model's held-out cold users."""
    from metarec_core.coldstart import METHODS
    from metarec_core.evaluate.metrics import mean_ci95

    methods = list(methods or METHODS)
    rows = []
    for n, k in enumerate(ks):
        progress(ProgressEvent("evaluate", n, len(ks), f"k = {k}"))
        per = per_user_metrics(model, cold, k, methods)
        for method, d in per.groupby("method", sort=False):
            row = {"method": method, "k": k, "n_users": int(d["user_id"].nunique())}
            for metric in ("hr@10", "ndcg@10", "recall@20"):
                mean, half = mean_ci95(d[metric])
                row.update({metric: mean, f"{metric}_lo": mean - half, f"{metric}_hi": mean + half})
            rows.append(row)
    progress(ProgressEvent("evaluate", len(ks), len(ks), "done"))
    return pd.DataFrame(rows)


def held_out_users(model: ModelInfo, interactions: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    """The model's cold users with more than k interactions: user_id, n_interactions."""
    try:
        cold = json.loads((model.path / COLD_USERS_FILE).read_text())
    except (OSError, ValueError):
        cold = []
    counts = interactions.groupby("user_id").size().rename("n_interactions").reset_index()
    counts = counts[counts["user_id"].isin(cold) & (counts["n_interactions"] > k)]
    return counts.sort_values(["n_interactions", "user_id"]).reset_index(drop=True)


@dataclass
class AdaptResult:
    """One user before and after few-shot adaptation, ready to render."""

    user: str
    support: pd.DataFrame  # item_id, title, category
    later: pd.DataFrame  # the user's later items (empty for a made-up user)
    before: pd.DataFrame  # rank, item_id, title, category, score, hit, because
    after: pd.DataFrame  # ... plus before_rank, rank_change
    metrics: pd.DataFrame  # metric, before, after
    losses: list[float]
    mix_before: pd.DataFrame  # category, share
    mix_after: pd.DataFrame
    method: str
    baseline: str
    seconds: float
    fallback: bool
    skipped: int


def _mix(recs: pd.DataFrame) -> pd.DataFrame:
    share = recs["category"].fillna("(none)").value_counts(normalize=True)
    return share.rename_axis("category").rename("share").reset_index()


def adapt_user(
    model,
    items: pd.DataFrame,
    support_ids: list[str],
    later_ids: list[str] | None = None,
    method: str = "adapted",
    baseline: str = "no-adapt",
    top: int = 10,
    user: str = "new user",
) -> AdaptResult:
    """Recommend for one user from its support items, before (``baseline``) and after (``method``).

    ``later_ids`` are the user's later interactions, when known: they mark hits and give HR@10,
    NDCG@10 and Recall@20 before vs after.
    """
    from metarec_core.evaluate.metrics import hr_at_k, ndcg_at_k, recall_at_k

    if not support_ids:
        raise ValidationError("pick at least one item for the user's history")
    t0 = time.perf_counter()
    sup = pd.DataFrame(
        {
            "user_id": user,
            "item_id": [str(i) for i in support_ids],
            "position": np.arange(len(support_ids)),
        }
    )
    after = model.recommend(sup, top=max(top, 20), method=method)
    before = model.recommend(sup, top=200, method=baseline)
    seconds = time.perf_counter() - t0
    meta = items.assign(item_id=items["item_id"].astype(str)).drop_duplicates("item_id")
    meta = meta.set_index("item_id")[["title", "category"]]
    later = [str(i) for i in (later_ids or [])]
    later_set = set(later)

    def _table(frame: pd.DataFrame) -> pd.DataFrame:
        t = frame[["rank", "item_id", "score", "explanation"]].copy()
        t["item_id"] = t["item_id"].astype(str)
        t = t.join(meta, on="item_id")
        t["hit"] = t["item_id"].isin(later_set)
        t["because"] = t["explanation"].map(
            lambda e: "; ".join(str(meta["title"].get(i, i)) for i in str(e).split("|") if i)
        )
        return t.drop(columns=["explanation"])

    b_all, a_all = _table(before.frame), _table(after.frame)
    before_rank = dict(zip(b_all["item_id"], b_all["rank"], strict=True))
    a = a_all.head(top).copy()
    a["before_rank"] = a["item_id"].map(before_rank)
    a["rank_change"] = a["before_rank"] - a["rank"]  # > 0: moved up; NaN: new in the top 200
    b = b_all.head(top)
    metrics = pd.DataFrame(columns=["metric", "before", "after"])
    if later_set:
        bl, al = b_all["item_id"].tolist(), a_all["item_id"].tolist()
        metrics = pd.DataFrame(
            [
                ("HR@10", hr_at_k(bl, later_set), hr_at_k(al, later_set)),
                ("NDCG@10", ndcg_at_k(bl, later_set), ndcg_at_k(al, later_set)),
                ("Recall@20", recall_at_k(bl, later_set), recall_at_k(al, later_set)),
            ],
            columns=["metric", "before", "after"],
        )
    support = pd.DataFrame({"item_id": sup["item_id"]}).join(meta, on="item_id")
    later_df = pd.DataFrame({"item_id": later}).join(meta, on="item_id")
    return AdaptResult(
        user=user,
        support=support,
        later=later_df,
        before=b.reset_index(drop=True),
        after=a.reset_index(drop=True),
        metrics=metrics,
        losses=list(after.loss_curves.get(user, [])),
        mix_before=_mix(b),
        mix_after=_mix(a),
        method=method,
        baseline=baseline,
        seconds=seconds,
        fallback=bool(after.fallback_users),
        skipped=int(after.skipped_items),
    )


def adapt_held_out(
    model,
    items: pd.DataFrame,
    history: pd.DataFrame,
    k: int,
    method: str = "adapted",
    baseline: str = "no-adapt",
    top: int = 10,
) -> AdaptResult:
    """Adapt to a real user's first k interactions; the later ones are the ground truth."""
    from metarec_core.data.splits import support_query

    user = str(history["user_id"].iloc[0])
    support, query = support_query(history, k)
    if support.empty:
        raise ValidationError(f"user {user} has no interactions after the first {k}")
    return adapt_user(
        model,
        items,
        support["item_id"].astype(str).tolist(),
        query["item_id"].astype(str).tolist(),
        method,
        baseline,
        top,
        user,
    )


@dataclass
class Cohort:
    """Many cold users at once: per-user metrics of each method and the gain over a baseline."""

    per_user: pd.DataFrame  # user_id, method, hr@10, ndcg@10, recall@20
    summary: pd.DataFrame  # method, mean of each metric, share of users improved
    gains: pd.DataFrame  # user_id, method, gain (ndcg@10 minus the baseline's)
    baseline: str
    k: int
    seconds: float


def cohort(
    model,
    interactions: pd.DataFrame,
    users: list[str],
    k: int,
    methods: list[str],
    baseline: str = "no-adapt",
) -> Cohort:
    """Run every method for many cold users; gains are NDCG@10 against ``baseline``."""
    t0 = time.perf_counter()
    methods = list(dict.fromkeys([baseline, *methods]))
    per = per_user_metrics(model, interactions, k, methods, users)
    if per.empty:
        raise ValidationError(f"none of these users has interactions after the first {k}")
    wide = per.pivot_table(index="user_id", columns="method", values="ndcg@10")
    gains = (
        wide.sub(wide[baseline], axis=0)
        .drop(columns=[baseline])
        .reset_index()
        .melt(id_vars="user_id", var_name="method", value_name="gain")
    )
    summary = per.groupby("method")[["hr@10", "ndcg@10", "recall@20"]].mean()
    improved = gains.groupby("method")["gain"].apply(lambda g: float((g > 0).mean()))
    summary["users improved"] = improved
    summary = summary.reset_index().sort_values("ndcg@10", ascending=False)
    return Cohort(per, summary, gains, baseline, k, time.perf_counter() - t0)


def coldstart_report(
    result: AdaptResult | None, dataset: str, cohort_: Cohort | None = None
) -> str:
    """The Cold-Start Lab's results as a self-contained HTML report."""
    from metarec_core.report import Section, build_report
    from metarec_core.viz import figures as fig

    sections = []
    if result is not None:
        cards = {
            "user": result.user,
            "support items": len(result.support),
            "adapt time (s)": round(result.seconds, 3),
        }
        for _, r in result.metrics.iterrows():
            cards[f"{r['metric']} before → after"] = f"{r['before']:.3f} → {r['after']:.3f}"
        sections += [
            Section(
                "The user",
                [f"Method '{result.method}' against '{result.baseline}'.", cards, result.support],
            ),
            Section("Recommendations before adaptation", [result.before]),
            Section("Recommendations after adaptation", [result.after]),
            Section("Category mix", [fig.mix_before_after(result.mix_before, result.mix_after)]),
        ]
        if len(result.metrics):
            sections.append(Section("Metrics", [fig.metric_bars(result.metrics)]))
        if result.losses:
            sections.append(Section("Inner loop", [fig.loss_curve(result.losses)]))
    if cohort_ is not None:
        sections += [
            Section(f"Cohort of cold users (k = {cohort_.k})", [cohort_.summary]),
            Section("Per-user NDCG@10 by method", [fig.gains_distribution(cohort_.per_user)]),
            Section(
                f"Gain over {cohort_.baseline}",
                [fig.gains_distribution(cohort_.gains.rename(columns={"gain": "ndcg@10"}))],
            ),
        ]
    if not sections:
        sections = [Section("Nothing yet", ["Adapt a user or run a cohort first."])]
    return build_report(f"Cold-start users · {dataset}", sections, subtitle=dataset)
