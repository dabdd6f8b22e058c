"""Cross-shop evaluation: a model trained on one shop serving another shop's new users.

Protocol: the target shop's users are split as in the cold-start protocol (10% cold, at most
2,000, seeded); a cold user's first k interactions are the support, later distinct items the
query; every method ranks the target's whole catalogue minus the support. The source model never
sees the target's interactions. Beside it, in the same run:
  - text only: TF-IDF cosine and encoder cosine to the support items (no data needed);
  - in-shop baselines (popularity, item-kNN, EASE) fit on n warm target users, for each n of
    ``target_users`` (0 = a shop that has just opened: only the text methods and the model);
  - ``transfer+log``: the source model with the in-shop item-item statistics of the same n users.
The model is served as ``recommend --items`` serves it (coldstart/transfer.py ``serve_new_shop``):
the cold users' supports are the new shop's only log; their later actions never are.
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
    import torch

    from metarec_core.coldstart.data import pad
    from metarec_core.coldstart.scoring import top_items
    from metarec_core.coldstart.transfer import WordMatch

    words, out = WordMatch(texts), []
    for start in range(0, len(supports), 256):
        s = torch.as_tensor(pad(supports[start : start + 256]))
        mask = (s >= 0).float()
        s = s.clamp(min=0)
        scores = words.scores(s, mask).scatter_add(1, s, mask * -1e9)  # (B, M), support last
        out.append(top_items(scores, top)[1].numpy())
    return np.concatenate(out) if out else np.zeros((0, top), np.int64)


def evaluate_transfer(
    model,
    target_interactions: pd.DataFrame,
    target_items: pd.DataFrame,
    k: int = 3,
    seed: int = 0,
    target_users: Sequence[int] = TARGET_USERS,
    progress: Progress = no_progress,
    encoder=None,
    train_at: Sequence[int] = (),
    config=None,
) -> TransferReport:
    """Cold-user quality on the target shop of ``model`` (trained elsewhere) against text-only and
    in-shop baselines; see the module docstring for the protocol.

    ``train_at``: numbers of warm target users (also in ``target_users``) on which to train a
    model from ``model``'s weights and one from scratch (``train --init-from``, keeping the
    better on held-back users of that log); reported as ``init-from`` (minutes per entry).
    """
    from metarec_core.coldstart.recommend import rank_users
    from metarec_core.coldstart.transfer import serve_new_shop, with_log

    warm, cold = split_users(target_interactions, seed)
    users, supports, queries = cold_tasks(target_interactions, cold, k)
    support_log = pd.DataFrame(
        {
            "user_id": np.repeat(np.asarray(users, dtype=object), [len(s) for s in supports]),
            "item_id": [i for s in supports for i in s],
            "position": [p for s in supports for p in range(len(s))],
        }
    )
    warm_log = target_interactions[target_interactions["user_id"].astype(str).isin(set(warm))]
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.asarray(sorted(set(warm_log["user_id"].astype(str))), dtype=object))
    sizes = []  # (n as asked, warm users it means here), each number of warm users once
    for n in target_users:
        n_all = len(order) if n < 0 else min(n, len(order))
        if n != 0 and n_all not in {m for _, m in sizes}:  # e.g. 1,000 and "all" on a small shop
            sizes.append((n, n_all))
    total = len(ZERO_DATA) + sum(len(WITH_DATA) + (n in train_at) for n, _ in sizes)
    out: list[dict] = []

    def running(what: str) -> None:
        """Report the step about to start, with the number of rows scored so far."""
        progress(ProgressEvent("evaluate", len(out), total, what))

    running("serving the new shoppers' first actions")
    bare = serve_new_shop(model, target_items, None, encoder=encoder)
    served = serve_new_shop(model, target_items, support_log, encoder=encoder)
    index, ids = served.index, served.catalogue.item_ids
    rows_of = [np.array([index[i] for i in s if i in index], np.int64) for s in supports]

    def score(method: str, n: int, ranked: np.ndarray) -> None:
        lists = [list(ids[r]) for r in ranked]
        per_user = per_user_scores(lists, queries)
        row = {"method": method, "target_users": n, "k": k, "n_users": len(users)}
        for metric, values in per_user.items():
            mean, half = mean_ci95(values)
            row.update({metric: mean, f"{metric}_lo": mean - half, f"{metric}_hi": mean + half})
        out.append(row)

    for method in ("adapted", "no-adapt", "text-similarity"):
        running(f"{method} · no log")
        score(method, 0, rank_users(served, rows_of, method, 20).items)
    running("text-tfidf · no log")
    score("text-tfidf", 0, tfidf_rank(list(served.catalogue.texts), rows_of, 20))
    for n, n_all in sizes:
        where = f"{n_all:,} shoppers' log"
        running(f"in-shop methods · learning from {where}")
        chosen = warm_log[warm_log["user_id"].astype(str).isin(set(order[:n_all]))]
        shop = with_log(bare, chosen)
        for method in ("popularity", "item-knn", "ease"):
            running(f"{method} · {where}")
            score(method, n_all, rank_users(shop, rows_of, method, 20).items)
        running(f"transfer+log · learning from {where}")
        log = pd.concat([chosen, support_log], ignore_index=True)
        grown = with_log(bare, log, includes_support=True)
        score("transfer+log", n_all, rank_users(grown, rows_of, "adapted", 20).items)
        if n in train_at:
            from metarec_core.coldstart.transfer import train_from

            running(f"init-from · training on {where} (minutes)")
            trained = train_from(model, chosen, target_items, config, encoder=encoder)
            kept = trained.report["init_from"]["kept"]
            as_served, share = trained.for_request(rows_of, "adapted")  # as recommend serves it
            score("init-from", n_all, rank_users(as_served, rows_of, "adapted", 20).items)
            out[-1].update(kept=kept, popularity_share=share)
    progress(ProgressEvent("evaluate", len(out), total, "done"))
    info = {
        "k": k,
        "seed": seed,
        "n_cold_users": len(users),
        "n_warm_users": len(order),
        "catalogue": served.report.get("served_catalogue", {"n_items": len(ids)}),
    }
    return TransferReport(pd.DataFrame(out), info)
