"""Cross-shop evaluation: a model trained on one shop serving another shop's new users.

Protocol: the target shop's users are split as in the cold-start protocol (10% cold, at most
2,000, seeded); a cold user's first k interactions are the support, later distinct items the
query; every method ranks the target's whole catalogue minus the support. The source model never
sees the target's interactions. Beside it, in the same run:
  - text only: TF-IDF cosine and encoder cosine to the support items (no data needed);
  - in-shop baselines (popularity, item-kNN, EASE) fit on n warm target users, for each n of
    ``target_users`` (0 = a shop that has just opened: only the text methods and the model);
  - ``transfer+log``: the source model with the in-shop item-item statistics of the same n users.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from metarec_core.evaluate.metrics import mean_ci95
from metarec_core.evaluate.protocol import cold_tasks, per_user_scores, split_users
from metarec_core.types import Progress, ProgressEvent, no_progress

log = logging.getLogger(__name__)
TARGET_USERS = (0, 100, 1000, -1)  # warm target users the in-shop methods see (-1: all)
ZERO_DATA = ("adapted", "no-adapt", "text-tfidf", "text-similarity")
WITH_DATA = ("popularity", "item-knn", "ease", "transfer+log")


@dataclass
class TransferReport:
    """One row per (method, n_target_users): NDCG@10, HR@10, Recall@20 with 95% intervals."""

    rows: pd.DataFrame
    info: dict = field(default_factory=dict)

    def table(self, metric: str = "ndcg@10") -> pd.DataFrame:
        """method x target users table of the metric's mean."""
        return self.rows.pivot(index="method", columns="target_users", values=metric)

    def to_dict(self) -> dict:
        return {"info": self.info, "rows": self.rows.to_dict(orient="records")}


def tfidf_rank(texts: Sequence[str], supports: list[np.ndarray], top: int) -> np.ndarray:
    """(U, top) item rows by summed TF-IDF cosine (word 1-2 grams) to each user's support."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    x = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1).fit_transform(texts)
    out = np.zeros((len(supports), top), np.int64)
    for start in range(0, len(supports), 256):
        chunk = supports[start : start + 256]
        rows = np.concatenate([np.full(len(s), i) for i, s in enumerate(chunk)])
        import scipy.sparse as sp

        pick = sp.csr_matrix(
            (np.ones(len(rows)), (rows, np.concatenate(chunk))), shape=(len(chunk), x.shape[0])
        )
        scores = np.asarray((pick @ x @ x.T).todense())  # (B, M)
        for i, s in enumerate(chunk):
            scores[i, s] = -np.inf
        out[start : start + len(chunk)] = np.argsort(-scores, axis=1, kind="stable")[:, :top]
    return out


def evaluate_transfer(
    model,
    target_interactions: pd.DataFrame,
    target_items: pd.DataFrame,
    k: int = 3,
    seed: int = 0,
    target_users: Sequence[int] = TARGET_USERS,
    progress: Progress = no_progress,
    encoder=None,
) -> TransferReport:
    """Cold-user quality on the target shop of ``model`` (trained elsewhere) against text-only and
    in-shop baselines; see the module docstring for the protocol."""
    from metarec_core.coldstart.recommend import rank_users
    from metarec_core.coldstart.transfer import for_catalogue, with_log

    served = for_catalogue(model, target_items, encoder=encoder)
    warm, cold = split_users(target_interactions, seed)
    users, supports, queries = cold_tasks(target_interactions, cold, k)
    index, ids = served.index, served.catalogue.item_ids
    rows_of = [np.array([index[i] for i in s if i in index], np.int64) for s in supports]
    warm_log = target_interactions[target_interactions["user_id"].astype(str).isin(set(warm))]
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.asarray(sorted(set(warm_log["user_id"].astype(str))), dtype=object))
    out = []

    def score(method: str, n: int, ranked: np.ndarray) -> None:
        lists = [list(ids[r]) for r in ranked]
        per_user = per_user_scores(lists, queries)
        row = {"method": method, "target_users": n, "k": k, "n_users": len(users)}
        for metric, values in per_user.items():
            mean, half = mean_ci95(values)
            row.update({metric: mean, f"{metric}_lo": mean - half, f"{metric}_hi": mean + half})
        out.append(row)
        progress(
            ProgressEvent(
                "evaluate", len(out), 0, f"{method} @ {n} users", {"ndcg@10": row["ndcg@10"]}
            )
        )

    for method in ("adapted", "no-adapt", "text-similarity"):
        score(method, 0, rank_users(served, rows_of, method, 20).items)
    score("text-tfidf", 0, tfidf_rank(list(served.catalogue.texts), rows_of, 20))
    for n in target_users:
        if n == 0:
            continue
        n_all = len(order) if n < 0 else min(n, len(order))
        chosen = set(order[:n_all])
        shop = with_log(served, warm_log[warm_log["user_id"].astype(str).isin(chosen)])
        for method in ("popularity", "item-knn", "ease"):
            score(method, n_all, rank_users(shop, rows_of, method, 20).items)
        score("transfer+log", n_all, rank_users(shop, rows_of, "adapted", 20).items)
    info = {
        "k": k,
        "seed": seed,
        "n_cold_users": len(users),
        "n_warm_users": len(order),
        "catalogue": served.report.get("served_catalogue", {"n_items": len(ids)}),
    }
    return TransferReport(pd.DataFrame(out), info)
