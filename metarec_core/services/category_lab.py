"""The New Category Lab: category tasks, classification runs, metrics and the report."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from metarec_core.errors import NotFoundError, ValidationError
from metarec_core.types import Progress, no_progress

if TYPE_CHECKING:
    import plotly.graph_objects as go

log = logging.getLogger(__name__)


def load_category_model(path: Path):
    """A trained category model from its directory."""
    from metarec_core.categories import CategoryModel

    return CategoryModel.load(path)


def encoder_choices(first: str = "minilm") -> dict[str, str]:
    """Installed text encoders for the Lab, ``first`` first: name -> "name: trade-off"."""
    from metarec_core.embed.registry import ENCODERS, encoder_spec

    names = [first] + [n for n, spec in ENCODERS.items() if n != first and spec.installed()]
    return {n: f"{n}: {encoder_spec(n).tradeoff}" for n in names}


def model_encoder_name(model) -> str:
    """The encoder a trained category model classifies with (one-line error if not installed)."""
    from metarec_core.categories import model_encoder

    return model_encoder(model)


def model_note(model) -> str | None:
    """One line when a trained category model classifies in its encoder's own space (its
    meta-training was dropped), else None."""
    if model is None or not model.is_plain or model.report.get("kind") != "trained":
        return None
    if model.report.get("validation"):
        return (
            "This model keeps the encoder's space: its meta-training did not beat it on "
            "held-back categories."
        )
    return "This model keeps the encoder's space: it was saved without meta-training."


def category_task(
    items: pd.DataFrame,
    categories: list[str],
    k: int,
    seed: int = 0,
    foreign: int = 0,
) -> tuple[dict[str, str], list[str], pd.Series]:
    """Treat existing categories as new: k labelled items each, the rest as queries with truth.

    Args:
        categories: the categories to pretend are new (at least 2, or 1 with ``foreign`` items
            mixed in, for the open set).
        k: labelled examples per category (its other items become queries).
        foreign: also mix in this many items of *other* categories (truth "(other)") to judge
            the open-set "none of these" answer.
    Returns (labels item_id -> category, query item ids, truth per query item id).
    """
    if len(categories) < (1 if foreign else 2):
        raise ValidationError(
            "choose at least 2 categories to treat as new (or 1, with the open set and "
            "products of other categories mixed in)"
        )
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
# label_next's other side of a single category's threshold (``categories.aids.NONE_OF_THESE``,
# not imported here: that would load the engine with the page)
NONE_OF_THESE = "none of these"


@dataclass
class CategoryRun:
    """Everything the New Category Lab shows after one run."""

    labels: dict[str, str]
    predictions: pd.DataFrame  # item_id, title, predicted, confidence, [similarity, truth, ...]
    categories: list[str]
    accuracy: float | None
    macro_f1: float | None
    loo_accuracy: float | None  # None with a single category (always right there) or 1 shot
    loo: pd.DataFrame
    confusion: pd.DataFrame
    label_next: pd.DataFrame
    closest: pd.DataFrame
    open_set: bool
    threshold: float | None  # open set: cut on ``predictions["similarity"]``
    open_metrics: dict[str, float]
    model_used: str
    seconds: float
    truth_known: bool
    threshold_shift: float = 0.0
    script_warning: str | None = None
    encoder: str = ""


def classify_categories(
    items: pd.DataFrame,
    labels: dict[str, str],
    query_ids: list[str] | None = None,
    truth: pd.Series | None = None,
    model=None,
    open_set: bool = False,
    encoder=None,
    progress: Progress = no_progress,
    model_name: str | None = None,
    threshold_shift: float = 0.0,
) -> CategoryRun:
    """Few-shot classify ``query_ids`` (default: every unlabelled item) into the labelled categories.

    ``labels`` maps item id -> category (k per category); ``truth`` (item id -> category or
    OTHER) enables accuracy, macro-F1 (see ``_checked``), the query confusion matrix and
    open-set precision/recall.
    ``threshold_shift`` (open set) moves the engine's threshold: up for precision, down for
    recall.
    """
    from metarec_core import categories as cat_engine

    t0 = time.perf_counter()
    if len({c for c in labels.values()}) < (1 if open_set else 2):
        raise ValidationError(
            "label items of at least 2 categories first (or of 1, with the open set on)"
            if labels
            else "label some items first"
        )
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
        support,
        query,
        model=model,
        open_set=open_set,
        encoder=encoder,
        progress=progress,
        threshold_shift=threshold_shift,
    )
    preds = result.predictions
    if open_set:  # what the threshold cuts: similarity to the closest category (Q,)
        preds = preds.assign(similarity=result.scores.sims.max(1))
    preds = preds.merge(query, on="item_id", how="left")
    preds["predicted"] = preds["category"].fillna(NONE)
    preds = preds.drop(columns=["category"])
    acc = f1 = None
    open_metrics: dict[str, float] = {}
    if truth is not None:
        preds, acc, f1 = _checked(preds, truth, open_set, result.categories)
        conf = pd.crosstab(preds["truth"], preds["predicted"])
        if open_set:
            open_metrics = _open_set_metrics(preds)
    else:
        conf = cat_engine.confusion(result)
    cols = ["item_id", "title", "predicted", "confidence"]
    cols += ["similarity"] if open_set else []
    cols += ["truth", "correct"] if truth is not None else []
    # one category: every labelled product is "closest" to it, so leave-one-out is always right
    loo_accuracy = result.leave_one_out if len(result.categories) > 1 else None
    return CategoryRun(
        labels=dict(labels),
        predictions=preds[cols].sort_values("confidence", ascending=False).reset_index(drop=True),
        categories=list(result.categories),
        accuracy=acc,
        macro_f1=f1,
        loo_accuracy=loo_accuracy,
        loo=cat_engine.leave_one_out(result),
        confusion=conf,
        label_next=cat_engine.label_next(result, n=10),
        closest=cat_engine.closest_to_prototypes(result, n=5),
        open_set=open_set,
        threshold=result.threshold,
        open_metrics=open_metrics,
        model_used=f"model {model_name}" if model_name else result.model_used,
        seconds=time.perf_counter() - t0,
        truth_known=truth is not None,
        threshold_shift=float(threshold_shift) if open_set else 0.0,
        script_warning=result.script_warning,
        encoder=_encoder_name(encoder, model),
    )


def _checked(
    preds: pd.DataFrame, truth: pd.Series, open_set: bool, categories: list[str]
) -> tuple[pd.DataFrame, float | None, float | None]:
    """Predictions with truth and correct columns, accuracy and macro-F1.

    With the open set every query counts, "none of these" being the right answer for an OTHER
    product; without it OTHER products cannot be right and are left out.
    """
    preds = preds.assign(truth=preds["item_id"].map(truth).fillna(OTHER))
    right = preds["truth"].replace(OTHER, NONE)  # (Q,) the right answer
    preds["correct"] = preds["predicted"] == right
    counted = np.ones(len(preds), bool) if open_set else (preds["truth"] != OTHER).to_numpy()
    if not counted.any():
        return preds, None, None
    acc = float(preds.loc[counted, "correct"].mean())
    return preds, acc, _macro_f1(right[counted], preds.loc[counted, "predicted"], categories)


def _encoder_name(encoder, model) -> str:
    """The registry name (else model id) of the encoder a run embedded with."""
    if encoder is not None:
        return str(getattr(encoder, "name", "") or encoder.model_id)
    if model is not None:
        return model.config.encoder
    from metarec_core.categories import CategoryConfig

    return CategoryConfig().encoder


def _macro_f1(truth: pd.Series, pred: pd.Series, categories: list[str]) -> float | None:
    """Macro-F1 over the categories that occur in the truth or the predictions."""
    from metarec_core.evaluate.metrics import macro_f1

    labels = [c for c in categories if (truth == c).any() or (pred == c).any()]
    return macro_f1(truth, pred, labels) if labels and not truth.empty else None


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
        out["others rejected"] = float((~accepted & ~inset).sum() / (~inset).sum())
    return out


def headline(run: CategoryRun) -> list[tuple[str, str, str]]:
    """The run's headline figures as (label, value, help) for people; with the open set they
    count every checked product, "none of these" included, like the confusion matrix."""
    out = []
    if run.loo_accuracy is not None:
        loo = f"{run.loo_accuracy:.0%}"
        out.append(
            ("Leave-one-out (labelled only)", loo, "Each labelled product judged by the rest.")
        )
    if run.truth_known:
        acc = "–" if run.accuracy is None else f"{run.accuracy:.0%}"
        f1 = "–" if run.macro_f1 is None else f"{run.macro_f1:.2f}"
        whole = (
            " 'None of these' is right for products of other categories." if run.open_set else ""
        )
        out.append(("Accuracy", acc, "Share of the checked products put right." + whole))
        out.append(("Macro-F1", f1, "F1 of each new category, averaged." + whole))
    helps = {
        "precision": "Of the products put in a new category, the share that belong there.",
        "recall": "Of the products of the new categories, the share put in the right one.",
        "others rejected": "Of the products of other categories, the share put in 'none of these'.",
    }
    for name, value in run.open_metrics.items():
        label = f"Open-set {name}" if name in ("precision", "recall") else name.capitalize()
        out.append((label, f"{value:.0%}", helps.get(name, "")))
    return out


def confidence_figure(run: CategoryRun) -> go.Figure:
    """Closed set: the predictions' confidence. Open set: their similarity to the closest
    category, where the threshold acts (below it: "none of these")."""
    from metarec_core.viz import figures as fig

    preds = run.predictions.rename(columns={"predicted": "category"})
    if not run.open_set:
        return fig.confidence_histogram(preds)
    return fig.confidence_histogram(
        preds, run.threshold, "similarity", "Similarity to the closest category"
    )


def category_report(run: CategoryRun, dataset: str) -> str:
    """The New Category Lab's results as a self-contained HTML report."""
    from metarec_core.report import Section, build_report
    from metarec_core.viz import figures as fig

    cards = {"categories": len(run.categories), "labelled items": len(run.labels)}
    cards.update({label: value for label, value, _ in headline(run)})
    sections = [
        Section(
            "Summary",
            [
                f"New categories: {', '.join(run.categories)}. Model: {run.model_used}. "
                f"Encoder: {run.encoder}. "
                + (
                    "Open set: items below the threshold are 'none of these'."
                    if run.open_set
                    else ""
                ),
                cards,
            ],
        ),
        Section("Confusion matrix", [fig.confusion_heatmap(run.confusion)]),
        Section("Confidence", [confidence_figure(run)]),
        Section("Predicted members (most confident first)", [run.predictions]),
        Section("Items worth labelling next", [run.label_next]),
        Section(
            "Labelled examples",
            [pd.DataFrame({"item_id": list(run.labels), "category": list(run.labels.values())})],
        ),
    ]
    return build_report(f"New categories · {dataset}", sections, subtitle=dataset)
