"""The Cold-Start Lab: loading models, adapting one user, cohorts and the report."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from metarec_core.errors import ValidationError
from metarec_core.evaluate.coldstart_eval import per_user_metrics
from metarec_core.services.models import ModelInfo
from metarec_core.services.replay import Replay, bestseller_list, change_label, shop_bestsellers
from metarec_core.training import COLD_USERS_FILE, EVAL_KS
from metarec_core.training import train_coldstart as train_coldstart  # re-exported by services
from metarec_core.types import Progress, no_progress

log = logging.getLogger(__name__)

TEST_COLDSTART = {
    "epochs": 2,
    "min_steps": 0,
    "dim": 16,
    "batch_size": 32,
    "neighbours": 20,
    "k_max": 5,
}
BEFORE_DEFAULT = "popularity"  # "before" = what a brand-new shopper sees: bestsellers


def load_coldstart(path: Path, device: str = "auto"):
    """A trained cold-start model from its directory."""
    from metarec_core.coldstart import ColdStartModel

    return ColdStartModel.load(path, device=device)


def evaluate_model(
    model, cold: pd.DataFrame, ks=EVAL_KS, methods=None, progress: Progress = no_progress
) -> pd.DataFrame:
    """Methods × k table (mean and 95% interval) on the model's held-out cold users
    (evaluate.coldstart_eval.evaluate_model, the protocol the CLI and the benchmarks use)."""
    from metarec_core.coldstart import METHODS
    from metarec_core.evaluate.coldstart_eval import evaluate_model as evaluate

    methods = list(methods or METHODS)
    users = cold["user_id"].unique()
    rows = evaluate(model, cold, users, [int(k) for k in ks], methods, progress)
    return pd.DataFrame(rows).drop(columns=["seconds"], errors="ignore")


def _cold_users(model: ModelInfo) -> list[str]:
    """The users the model held out of its training (none when it kept no list)."""
    try:
        return [str(u) for u in json.loads((model.path / COLD_USERS_FILE).read_text())]
    except (OSError, ValueError):
        return []


def held_out_users(model: ModelInfo, interactions: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    """The model's cold users with more than k interactions: user_id, n_interactions."""
    cold = _cold_users(model)
    counts = interactions.groupby("user_id").size().rename("n_interactions").reset_index()
    counts = counts[counts["user_id"].isin(cold) & (counts["n_interactions"] > k)]
    return counts.sort_values(["n_interactions", "user_id"]).reset_index(drop=True)


def bestsellers(model: ModelInfo, interactions: pd.DataFrame) -> pd.Series:
    """The shop's bestsellers (item_id -> shoppers, most first) from its own ``interactions``,
    without the shoppers its ``model`` held out: the "before" of every Lab view, whichever
    model serves the shop (one trained on another shop has no counts for these products)."""
    return shop_bestsellers(interactions, _cold_users(model))


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
    note: str = ""  # how the model's training set the inner loop, when it is not at full strength
    model: str = ""  # the model that served it, for people ("demo-coldstart")


def adaptation_note(model, method: str = "adapted", n_support: int | None = None) -> str:
    """A sentence for people when training scaled down or switched off the inner loop for a
    support of ``n_support`` items (None: the model's own k)."""
    verdict = (getattr(model, "report", None) or {}).get("meta", {}).get("adaptation") or {}
    scale = verdict.get("scale", 1.0)
    by_size = verdict.get("scale_by_size")
    if by_size and n_support:
        scale = by_size[min(n_support, len(by_size)) - 1]
    if method != "adapted" or scale >= 1.0:
        return ""
    if scale <= 0:
        return (
            "On this model's validation users the inner loop did not beat no adaptation for "
            "histories of this length, so training switched it off: 'adapted' ranks exactly as "
            "'no-adapt' here. Few training users make the learned step overfit; a log with more "
            "users lets adaptation pay off."
        )
    return (
        f"For histories of this length training scaled the inner loop's step to {scale:g}× of "
        "the meta-learned rates: that size did best on the validation users."
    )


def _mix(recs: pd.DataFrame) -> pd.DataFrame:
    share = recs["category"].fillna("(none)").value_counts(normalize=True)
    return share.rename_axis("category").rename("share").reset_index()


def adapt_user(
    model,
    items: pd.DataFrame,
    support_ids: list[str],
    later_ids: list[str] | None = None,
    method: str = "adapted",
    baseline: str = BEFORE_DEFAULT,
    top: int = 10,
    user: str = "new user",
    *,
    bestsellers: pd.Series | None = None,
    model_name: str = "",
) -> AdaptResult:
    """Recommend for one user from its support items, before (``baseline``) and after (``method``).

    The default ``baseline`` is what a brand-new shopper sees today: bestsellers, whatever the
    history. ``later_ids`` are the user's later interactions, when known: they mark what the
    user bought later and give HR@10, NDCG@10 and Recall@20 before vs after.

    Args:
        bestsellers: the shop's bestsellers (``bestsellers``): "popularity" on either side, and
            a user none of whose items the model knows, get these instead of the model's own
            popularity (default: the model's).
        model_name: names the serving model in the result.
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
    after = _ranked(model, sup, max(top, 20), method, bestsellers)
    before = _ranked(model, sup, 200, baseline, bestsellers)
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

    b_all, a_all = _table(before[0]), _table(after[0])
    before_rank = dict(zip(b_all["item_id"], b_all["rank"], strict=True))
    a = a_all.head(top).copy()
    a["before_rank"] = a["item_id"].map(before_rank)
    a["rank_change"] = a["before_rank"] - a["rank"]  # > 0: moved up; NaN: not in the top 200
    a["change"] = [change_label(b, r) for b, r in zip(a["before_rank"], a["rank"], strict=True)]
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
        losses=list(after[1].loss_curves.get(user, [])),
        mix_before=_mix(b),
        mix_after=_mix(a),
        method=method,
        baseline=baseline,
        seconds=seconds,
        fallback=bool(after[1].fallback_users),
        skipped=int(after[1].skipped_items),
        note=adaptation_note(model, method, len(support_ids)),
        model=model_name,
    )


def _ranked(model, support: pd.DataFrame, top: int, method: str, bestsellers: pd.Series | None):
    """(rank, item_id, score, explanation rows; the model's Recommendations) of one user:
    the model's ranking, or the shop's ``bestsellers`` for "popularity" and for a user none of
    whose items the model knows."""
    rec = model.recommend(support, top=top, method=method)
    if bestsellers is not None and (method == "popularity" or rec.fallback_users):
        return bestseller_list(bestsellers, support["item_id"], top), rec
    return rec.frame, rec


def adapt_held_out(
    model,
    items: pd.DataFrame,
    history: pd.DataFrame,
    k: int,
    method: str = "adapted",
    baseline: str = BEFORE_DEFAULT,
    top: int = 10,
    *,
    bestsellers: pd.Series | None = None,
    model_name: str = "",
) -> AdaptResult:
    """Adapt to a real user's first k interactions; the later ones are the ground truth
    (``bestsellers``, ``model_name``: as in ``adapt_user``)."""
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
        bestsellers=bestsellers,
        model_name=model_name,
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
    lift: pd.DataFrame  # "adapted" minus each other method, user by user (see adapted_lift)
    model: str = ""  # the model that served it, for people


def adapted_lift(per_user: pd.DataFrame, metric: str = "ndcg@10") -> pd.DataFrame:
    """``adapted`` minus every other method on the same users: mean, paired 95% interval,
    share of users better off, and whether the interval lies above zero."""
    from metarec_core.evaluate.metrics import mean_ci95

    wide = per_user.pivot_table(index="user_id", columns="method", values=metric)
    rows = []
    if "adapted" in wide:
        for other in (m for m in wide.columns if m != "adapted"):
            diff = (wide["adapted"] - wide[other]).dropna()
            mean, half = mean_ci95(diff)
            rows.append(
                {
                    "adapted minus": other,
                    f"{metric} gain": mean,
                    "95% low": mean - half,
                    "95% high": mean + half,
                    "users better": float((diff > 0).mean()),
                    "users worse": float((diff < 0).mean()),
                    "above zero": bool(mean - half > 0),
                    "users": int(diff.size),
                }
            )
    return pd.DataFrame(rows)


def cohort(
    model,
    interactions: pd.DataFrame,
    users: list[str],
    k: int,
    methods: list[str],
    baseline: str = BEFORE_DEFAULT,
    *,
    bestsellers: pd.Series | None = None,
    model_name: str = "",
) -> Cohort:
    """Run every method for many cold users; gains are NDCG@10 against ``baseline``, and the
    lift of ``adapted`` over each other method comes with a paired 95% interval.
    ``bestsellers``, ``model_name``: as in ``adapt_user``."""
    t0 = time.perf_counter()
    methods = list(dict.fromkeys([baseline, *methods]))
    per = _per_user(model, interactions, k, methods, users, bestsellers)
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
    lift = adapted_lift(per)
    seconds = time.perf_counter() - t0
    return Cohort(per, summary, gains, baseline, k, seconds, lift, model_name)


def _per_user(
    model, interactions, k: int, methods: list[str], users, bestsellers: pd.Series | None
) -> pd.DataFrame:
    """``per_user_metrics``, with "popularity" ranked by the shop's ``bestsellers`` if given."""
    from metarec_core.evaluate.protocol import cold_tasks, per_user_scores

    if bestsellers is None or "popularity" not in methods:
        return per_user_metrics(model, interactions, k, methods, users)
    ids, supports, queries = cold_tasks(interactions, users, k)
    ranked = [bestseller_list(bestsellers, s, 20)["item_id"].tolist() for s in supports]
    pop = pd.DataFrame({"user_id": ids, "method": "popularity", **per_user_scores(ranked, queries)})
    others = [m for m in methods if m != "popularity"]
    per = per_user_metrics(model, interactions, k, others, users)
    frames = {"popularity": pop, **{m: per[per["method"] == m] for m in others}}
    return pd.concat([frames[m] for m in methods], ignore_index=True)


def coldstart_report(
    result: AdaptResult | None,
    dataset: str,
    cohort_: Cohort | None = None,
    replay_: Replay | None = None,
) -> str:
    """The Cold-Start Lab's results (adapted user, replay frames, cohort lift) as one
    self-contained HTML report."""
    from metarec_core.report import Section, build_report
    from metarec_core.viz import figures as fig

    sections = []
    if result is not None:
        cards = {
            "user": result.user,
            "model": result.model or "(not named)",
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
    if replay_ is not None:
        intro = (
            f"{replay_.user}: the top {replay_.top} ({replay_.method}) after each of their first "
            f"{len(replay_.frames) - 1} actions; step 0 is what a brand-new shopper sees"
            + (f" (model {replay_.model})." if replay_.model else ".")
        )
        sections.append(
            Section(
                "Click-by-click replay", [intro, *filter(None, [replay_.note]), replay_.summary()]
            )
        )
        for f in replay_.frames:
            title = f"Step {f.step}: " + (f"after '{f.action}'" if f.step else "no history yet")
            view = f.recs[["rank", "change", "title", "category", "because", "bought_later"]]
            sections.append(Section(title, [view]))
    if cohort_ is not None:
        sections += [
            Section(f"Cohort of cold users (k = {cohort_.k})", [cohort_.summary]),
            Section(
                "Lift of adaptation, user by user (NDCG@10, paired 95% interval)",
                [cohort_.lift],
            ),
            Section("Per-user NDCG@10 by method", [fig.gains_distribution(cohort_.per_user)]),
            Section(
                f"Gain over {cohort_.baseline}",
                [fig.gains_distribution(cohort_.gains.rename(columns={"gain": "ndcg@10"}))],
            ),
        ]
    if not sections:
        sections = [Section("Nothing yet", ["Adapt a user or run a cohort first."])]
    return build_report(f"Cold-start users · {dataset}", sections, subtitle=dataset)
