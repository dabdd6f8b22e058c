"""Validation aids for a merchandiser: leave-one-out, confusion, closest items, label next.

All take a ``Classification`` (from ``classify``) so the app computes embeddings once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from metarec_core.categories.classifier import Classification

NONE_OF_THESE = "none of these"  # ``label_next``'s other side of a single category's threshold


def _scores(result: Classification):
    if result.scores is None or result.support is None or result.query is None:
        raise ValueError("this Classification carries no scores (was it built by classify?)")
    return result.scores


def leave_one_out(result: Classification) -> pd.DataFrame:
    """Per support item: its category, the leave-one-out prediction, correct, own similarity.

    ``predicted`` is None for an item alone in its category (nothing left to compare against).
    Overall accuracy is ``result.leave_one_out``.
    """
    s = _scores(result)
    cats = np.asarray(result.categories, dtype=object)
    pred = np.where(s.loo_pred >= 0, cats[np.maximum(s.loo_pred, 0)], None)
    out = result.support[["item_id", "title", "category"]].copy()
    out["predicted"] = pred
    out["correct"] = np.where(s.loo_pred >= 0, out["category"].to_numpy() == pred, None)
    out["similarity"] = s.loo_sim
    return out


def confusion(result: Classification) -> pd.DataFrame:
    """Leave-one-out confusion matrix on the support: rows = true category, columns = predicted."""
    loo = leave_one_out(result)
    loo = loo[loo["predicted"].notna()]
    m = pd.crosstab(
        pd.Categorical(loo["category"], result.categories),
        pd.Categorical(loo["predicted"], result.categories),
        dropna=False,
    )
    m.index.name, m.columns.name = "true", "predicted"
    return m


def closest_to_prototypes(result: Classification, n: int = 5) -> pd.DataFrame:
    """The ``n`` query items most similar to each prototype: category, rank, item_id, title, sim."""
    s = _scores(result)
    rows = []
    titles = result.query["title"].to_numpy()
    ids = result.query["item_id"].to_numpy()
    for c, name in enumerate(result.categories):
        top = np.argsort(-s.sims[:, c], kind="stable")[:n]
        for rank, i in enumerate(top, 1):
            rows.append((name, rank, ids[i], titles[i], float(s.sims[i, c])))
    return pd.DataFrame(rows, columns=["category", "rank", "item_id", "title", "similarity"])


def _near_duplicate(z: np.ndarray, picked: list[int], i: int) -> bool:
    """Whether item ``i`` of the unit rows ``z`` is a near-duplicate (cosine > 0.95) of an item
    already picked for labelling."""
    return bool(picked) and float((z[picked] @ z[i]).max()) > 0.95


def label_next(result: Classification, n: int = 10) -> pd.DataFrame:
    """Query items worth labelling next: most uncertain (margin between the top two categories),
    spread over the categories they sit between, with near-duplicates of a pick skipped.

    With a single category (open set) the uncertain items are those whose similarity is
    closest to the threshold: is it in the category or not? ``second`` is then "none of these".

    Columns: item_id, title, best, second, margin, reason.
    """
    s = _scores(result)
    if s.sims.shape[0] == 0:
        return pd.DataFrame(columns=["item_id", "title", "best", "second", "margin", "reason"])
    if s.sims.shape[1] == 1 and s.threshold is not None:
        return _label_next_one(result, s, n)
    p = s.probs / np.maximum(s.probs.sum(1, keepdims=True), 1e-12)  # (Q, C)
    order = np.argsort(-p, axis=1)
    best, second = order[:, 0], order[:, 1] if p.shape[1] > 1 else order[:, 0]
    margin = p[np.arange(len(p)), best] - p[np.arange(len(p)), second]
    picked: list[int] = []
    pairs: dict[tuple[int, int], int] = {}
    for i in np.argsort(margin, kind="stable"):
        if len(picked) >= n:
            break
        pair = tuple(sorted((int(best[i]), int(second[i]))))
        if pairs.get(pair, 0) >= max(2, n // 4):  # do not spend every label on one boundary
            continue
        if _near_duplicate(s.z_query, picked, int(i)):
            continue
        picked.append(int(i))
        pairs[pair] = pairs.get(pair, 0) + 1
    cats = np.asarray(result.categories, dtype=object)
    q = result.query.iloc[picked]
    return pd.DataFrame(
        {
            "item_id": q["item_id"].to_numpy(),
            "title": q["title"].to_numpy(),
            "best": cats[best[picked]],
            "second": cats[second[picked]],
            "margin": margin[picked],
            "reason": "uncertain between " + cats[best[picked]] + " and " + cats[second[picked]],
        }
    )


def _label_next_one(result: Classification, s, n: int) -> pd.DataFrame:
    """label_next for one category: the items nearest its open-set threshold, near-duplicates of
    a pick skipped; margin is the similarity's distance from the threshold."""
    gap = s.sims[:, 0] - s.threshold  # (Q,)
    picked: list[int] = []
    for i in np.argsort(np.abs(gap), kind="stable"):
        if len(picked) >= n:
            break
        if _near_duplicate(s.z_query, picked, int(i)):
            continue
        picked.append(int(i))
    cat = result.categories[0]
    q = result.query.iloc[picked]
    side = np.where(gap[picked] >= 0, "just above", "just below")
    return pd.DataFrame(
        {
            "item_id": q["item_id"].to_numpy(),
            "title": q["title"].to_numpy(),
            "best": np.where(gap[picked] >= 0, cat, NONE_OF_THESE),
            "second": np.where(gap[picked] >= 0, NONE_OF_THESE, cat),
            "margin": np.abs(gap[picked]),
            "reason": [f"{w} the threshold of {cat}: in or out?" for w in side],
        }
    )
