"""A shop served by a model trained on another shop, and how that compares as its log grows."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from metarec_core.config import Paths
from metarec_core.services.models import ModelInfo, list_models
from metarec_core.types import Progress, no_progress

GROWTH = (0, 100, 1000, -1)  # warm users of the shop the in-shop methods see (-1: all of them)
GROUPS = {
    "adapted": "model from another shop",
    "no-adapt": "model from another shop",
    "text-tfidf": "text only",
    "text-similarity": "text only",
    "popularity": "in-shop",
    "item-knn": "in-shop",
    "ease": "in-shop",
    "transfer+log": "model from another shop",
}
NO_LOG_STYLE = {  # method: (line dash, marker), so lines at the same height stay apart
    "adapted": ("dash", "circle-open"),
    "no-adapt": ("dot", "square-open"),
    "text-similarity": ("dashdot", "diamond-open"),
    "text-tfidf": ("longdash", "x-thin-open"),
}


@dataclass(frozen=True)
class NewShopRun:
    """One Compare and what it was computed for; shown only while those settings stay."""

    key: tuple  # run_key(...) of the settings it was computed with
    source: str  # the dataset the model was trained on
    k: int
    curve: pd.DataFrame


def run_key(dataset: str, model: ModelInfo, k: int) -> tuple[str, str, float, int]:
    """What a comparison depends on: this shop, the other shop's model (and version) and k."""
    return (dataset, str(model.path), float(model.created), int(k))


def other_shop_models(paths: Paths | None, dataset: str) -> list[ModelInfo]:
    """Cold-start models trained on any dataset but ``dataset`` (newest first)."""
    return [m for m in list_models(paths, kind="coldstart") if m.dataset and m.dataset != dataset]


def serve_from_other_shop(path: Path, items: pd.DataFrame, progress: Progress = no_progress):
    """The model at ``path`` serving ``items`` (another shop's catalogue) through item text, as
    ``recommend --items`` serves one shopper (coldstart/transfer.py ``serve_new_shop``)."""
    from metarec_core.coldstart.model import ColdStartModel
    from metarec_core.coldstart.transfer import serve_new_shop

    return serve_new_shop(ColdStartModel.load(path), items, None, progress=progress)


def new_shop_curve(
    model,
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    k: int = 3,
    target_users=GROWTH,
    progress: Progress = no_progress,
) -> pd.DataFrame:
    """NDCG@10 (with a 95% interval) of the shop's held-out new users for the other shop's
    model, text-only similarity and in-shop baselines fit on 0, 100, 1,000 and all warm users
    (evaluate/transfer_eval.py). Columns: method, group, target_users, ndcg@10, lo, hi;
    ``attrs["popularity_share"]``: the share of the new shoppers' item counts in the model's
    score with no log (coldstart/shop_popularity)."""
    from metarec_core.evaluate.transfer_eval import evaluate_transfer

    report = evaluate_transfer(
        model, interactions, items, k=k, seed=0, target_users=target_users, progress=progress
    )
    rows = report.rows
    out = pd.DataFrame(
        {
            "method": rows["method"],
            "group": rows["method"].map(GROUPS),
            "target_users": rows["target_users"],
            "ndcg@10": rows["ndcg@10"],
            "lo": rows["ndcg@10_lo"],
            "hi": rows["ndcg@10_hi"],
        }
    )
    out.attrs["popularity_share"] = float(report.info["catalogue"].get("popularity_share", 0.0))
    return out


def new_shop_summary(curve: pd.DataFrame, source: str, k: int) -> list[str]:
    """Short sentences for merchandisers: the best method with no log and at each log size
    (methods needing no log still count there), where an in-shop method beats every use of the
    other shop's model, and what adapting to each shopper changed."""
    ndcg = curve.set_index(["target_users", "method"])["ndcg@10"]
    if 0 not in ndcg.index.get_level_values(0):
        return []
    zero = ndcg.loc[0]
    model = f"the model from {source}"
    best = zero.idxmax()
    line = f"No log yet (first {k} actions of each new shopper): {best} ranks best, NDCG@10 "
    line += f"{zero[best]:.3f}"
    if best != "adapted" and "adapted" in zero:
        line += f"; {model} (adapted) reaches {zero['adapted']:.3f}"
    lines = [line + "."]
    for n in sorted(n for n in set(curve["target_users"]) if n > 0):
        here = pd.concat([zero, ndcg.loc[n]])
        best = here.idxmax()
        line = f"With {int(n):,} shoppers' log: {best} ranks best, {here[best]:.3f}"
        transferred = here[[m for m in here.index if GROUPS.get(m) == "model from another shop"]]
        if GROUPS.get(best) == "in-shop" and len(transferred):
            line += f", above {model} at its best ({transferred.idxmax()}, {transferred.max():.3f})"
        lines.append(line + ".")
    lines.append(_adaptation(curve[curve["target_users"] == 0].set_index("method")))
    share = curve.attrs.get("popularity_share", 0.0)
    if share > 0:
        lines.append(
            f"This shop is bought by popularity: how many shoppers chose each product takes "
            f"{share:g} of the model's score."
        )
    return [line for line in lines if line]


def _adaptation(zero: pd.DataFrame) -> str:
    """What adapting to each shopper's first actions changed (adapted against no-adapt)."""
    if not {"adapted", "no-adapt"} <= set(zero.index):
        return ""
    after, before = zero.loc["adapted", "ndcg@10"], zero.loc["no-adapt", "ndcg@10"]
    if after == before:
        return "Adapting to each shopper's first actions changed nothing here: adapted = no-adapt."
    word = "raised" if after > before else "lowered"
    half = (zero.loc["no-adapt", "hi"] - zero.loc["no-adapt", "lo"]) / 2
    chance = ", within the 95% interval (may be chance)" if abs(after - before) < half else ""
    return (
        f"Adapting to each shopper's first actions {word} NDCG@10 from {before:.3f} to "
        f"{after:.3f}{chance}."
    )


def new_shop_figure(curve: pd.DataFrame):
    """viz ``new_shop_curve`` with each no-log method in its own dash and marker, and a hover
    that names every line at a log size (lines at the same height stay told apart)."""
    from metarec_core.viz import figures as fig

    figure = fig.new_shop_curve(curve)
    for trace in figure.data:
        method = (trace.name or "").removesuffix(" (no log needed)")
        if method in NO_LOG_STYLE and method != trace.name:
            dash, symbol = NO_LOG_STYLE[method]
            trace.update(mode="lines+markers", line_dash=dash, marker_symbol=symbol)
        trace.update(hovertemplate="%{fullData.name}: %{y:.3f}<extra></extra>")
    figure.update_layout(hovermode="x unified")
    return figure


def init_from_command(model: Path, dataset: str) -> str:
    """The shell command that trains this shop's own model from ``model`` once it has a log
    (paths quoted for the shell; TARGET_LOG / TARGET_ITEMS / NEW_MODEL_DIR are the user's)."""
    return (
        f"python -m metarec_core train --init-from {shlex.quote(str(model))} "
        f"--interactions TARGET_LOG --items TARGET_ITEMS --out NEW_MODEL_DIR "
        f"--dataset {shlex.quote(dataset)}"
    )
