"""The cold-start evaluation protocol and its report.

For each seed: users with at least 2 interactions are split at random into warm and cold (10% of
all users cold, at most 2,000). Every model
and baseline is fit on the warm users' interactions only. A cold user's first k interactions (in
order) are the support; all later distinct items not in the support are the query. Each method
ranks the whole catalogue minus the support items; HR@10, NDCG@10 and Recall@20 are averaged over
cold users with a non-empty query, and catalogue coverage / mean popularity of the top-10 lists are
reported. Results are aggregated over seeds as mean and 95% interval. The CLI's ``evaluate``,
the benchmarks and the models the app trains (seed = the model's seed) all use this split.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from metarec_core.evaluate import metrics as M

log = logging.getLogger(__name__)
METRICS = ("hr@10", "ndcg@10", "recall@20", "coverage@10", "mean_pop@10")
COLD_SHARE, MAX_COLD = 0.10, 2000  # of users held out as new users, and at most this many
MIN_INTERACTIONS = 2  # a user can be held out with at least this many (support + 1 query)


@dataclass
class EvalReport:
    """Tidy results: one row per (method, k, seed) in ``results``; ``summary`` has mean and ci95."""

    results: pd.DataFrame
    summary: pd.DataFrame
    info: dict = field(default_factory=dict)
    paired: pd.DataFrame = field(default_factory=pd.DataFrame)

    def to_dict(self) -> dict:
        return {
            "protocol": "cold-start users: 10% cold (max 2000), first k = support, later distinct = query",
            "info": self.info,
            "results": self.results.to_dict(orient="records"),
            "summary": self.summary.to_dict(orient="records"),
            "paired": self.paired.to_dict(orient="records"),
        }

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=_jsonable)

    def paired_table(self) -> pd.DataFrame:
        """other method x k table of 'adapted - other' NDCG@10 with its 95% interval."""
        if self.paired.empty:
            return pd.DataFrame()
        p = self.paired
        cell = p.apply(lambda r: f"{r['diff']:+.4f} [{r['low']:+.4f}, {r['high']:+.4f}]", axis=1)
        return p.assign(cell=cell).pivot(index="other", columns="k", values="cell")

    def table(self, metric: str = "ndcg@10") -> pd.DataFrame:
        """method x k table of '<mean> ± <ci95>' for one metric (for printing); just the mean
        when there was a single seed, which gives no interval."""
        s = self.summary
        ci = (" ± " + s[f"{metric}_ci95"].map("{:.4f}".format)).where(s["n_seeds"] > 1, "")
        cells = s.assign(cell=s[f"{metric}_mean"].map("{:.4f}".format) + ci)
        return cells.pivot(index="method", columns="k", values="cell")


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return str(v)


def split_users(interactions: pd.DataFrame, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(warm, cold) user ids: a seeded random 10% of users (at most 2,000) are cold.

    Uses the data layer's split (users with at least ``MIN_INTERACTIONS`` interactions can be
    cold), so the split is the same for every k; the CLI, the benchmarks and the models the app
    trains all hold out users through this function.
    """
    from metarec_core.data.splits import split_users as shared_split

    split = shared_split(
        interactions,
        cold_fraction=COLD_SHARE,
        max_cold=MAX_COLD,
        seed=seed,
        min_interactions=MIN_INTERACTIONS,
    )
    return np.asarray(split.warm, dtype=object), np.asarray(split.cold, dtype=object)


def cold_tasks(
    interactions: pd.DataFrame, cold, k: int
) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """(user ids, support item ids, query item ids) of the ``cold`` users with a non-empty query
    (support = the first k interactions, query = later distinct items; data.splits.support_query)."""
    from metarec_core.data.splits import support_query

    df = interactions[interactions["user_id"].isin(set(cold))]
    support, query = support_query(df, k)
    if support.empty:
        return [], [], []
    s = support["item_id"].astype(str).groupby(support["user_id"], sort=True).apply(list)
    q = query["item_id"].astype(str).groupby(query["user_id"], sort=True).apply(list)
    return [str(u) for u in s.index], s.tolist(), q.loc[s.index].tolist()


def score_rankings(
    rankings: list[list[str]],
    queries: list[list[str]],
    n_catalogue: int,
    popularity: dict[str, float],
    ndcg: np.ndarray | None = None,
) -> dict[str, float]:
    """All protocol metrics for one method's top lists (``ndcg``: per-user NDCG@10 when the
    caller has it already)."""
    ndcg = user_ndcg(rankings, queries) if ndcg is None else ndcg
    pairs = list(zip(rankings, queries, strict=True))
    return {
        "hr@10": float(np.mean([M.hr_at_k(r, q, 10) for r, q in pairs])),
        "ndcg@10": float(np.mean(ndcg)),
        "recall@20": float(np.mean([M.recall_at_k(r, q, 20) for r, q in pairs])),
        "coverage@10": M.coverage(rankings, n_catalogue, 10),
        "mean_pop@10": M.mean_popularity(rankings, popularity, 10),
    }


def per_user_scores(rankings: list[list[str]], queries: list[list[str]]) -> dict[str, np.ndarray]:
    """(U,) HR@10, NDCG@10 and Recall@20 of each user's list."""
    pairs = list(zip(rankings, queries, strict=True))
    return {
        "hr@10": np.array([M.hr_at_k(r, q, 10) for r, q in pairs]),
        "ndcg@10": user_ndcg(rankings, queries),
        "recall@20": np.array([M.recall_at_k(r, q, 20) for r, q in pairs]),
    }


def user_ndcg(rankings: list[list[str]], queries: list[list[str]]) -> np.ndarray:
    """(U,) NDCG@10 of each user's list."""
    return np.array([M.ndcg_at_k(r, q, 10) for r, q in zip(rankings, queries, strict=True)])


def paired_differences(
    per_user: dict[tuple[str, int], np.ndarray], reference: str = "adapted"
) -> pd.DataFrame:
    """``reference`` minus every other method, user by user, per k (seeds pooled).

    Both methods rank for the same users with the same split, so the per-user differences give a
    much tighter interval than comparing two means whose seed-to-seed spread is shared. Columns:
    other, k, n (user-seed pairs), diff (mean NDCG@10 difference), low/high (95% normal
    interval), wins/losses (share of users where the reference is above / below).
    """
    rows = []
    for (method, k), ref in per_user.items():
        if method != reference:
            continue
        for (other, k2), values in per_user.items():
            if other == reference or k2 != k or len(values) != len(ref):
                continue
            d = ref - values
            half = 1.96 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
            mean = float(d.mean()) if len(d) else float("nan")
            rows.append(
                {
                    "other": other,
                    "k": int(k),
                    "n": len(d),
                    "diff": mean,
                    "low": mean - half,
                    "high": mean + half,
                    "wins": float((d > 0).mean()) if len(d) else float("nan"),
                    "losses": float((d < 0).mean()) if len(d) else float("nan"),
                }
            )
    return pd.DataFrame(rows)


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% interval over seeds of each metric, per (method, k)."""
    rows = []
    for (method, k), g in results.groupby(["method", "k"], sort=False):
        row = {"method": method, "k": int(k), "n_seeds": len(g)}
        for m in METRICS:
            row[f"{m}_mean"], row[f"{m}_ci95"] = M.mean_ci95(g[m].tolist())
        rows.append(row)
    return pd.DataFrame(rows)
