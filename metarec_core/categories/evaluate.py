"""Evaluation protocol on held-out categories: episodes, all-way and open set, baselines beside.

Categories are split, never items: a model is meta-trained on the categories outside
``held_out`` and every number here is measured on the held-out ones only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from metarec_core.categories import baselines
from metarec_core.categories.engine import Scores, score
from metarec_core.categories.model import CategoryModel
from metarec_core.types import Progress, ProgressEvent, no_progress

# method(task) -> (Q,) predictions; a task carries everything a method may use.
Method = Callable[["Task"], np.ndarray]


@dataclass(frozen=True)
class Task:
    """One few-shot task on held-out categories (C classes)."""

    xs: np.ndarray  # (S, D) raw support embeddings
    ys: np.ndarray  # (S,)
    xq: np.ndarray  # (Q, D)
    yq: np.ndarray  # (Q,) truth; -1 = foreign (open set)
    names: np.ndarray  # (C, D) raw category-name embeddings
    support_texts: list[str]
    query_texts: list[str]
    n_classes: int
    name_texts: list[str] = field(default_factory=list)  # (C,) category names, when known


@dataclass
class CategoryEvalReport:
    """Side-by-side results: one row per (method, setting, metric) with mean and 95% interval."""

    table: pd.DataFrame
    info: dict = field(default_factory=dict)

    def pivot(self, metric: str = "accuracy") -> pd.DataFrame:
        """method × setting table of "mean ± ci" strings for one metric."""
        t = self.table[self.table.metric == metric]
        cell = t.apply(lambda r: f"{r['mean']:.3f} ± {r['ci95']:.3f}", axis=1)
        return t.assign(cell=cell).pivot(index="method", columns="setting", values="cell")


def task_scores(model: CategoryModel, t: Task, open_set: bool = False) -> Scores:
    """The engine's scores for a task, as ``classify`` computes them (on cached embeddings)."""
    texts = list(t.support_texts) + list(t.query_texts)
    return score(model, t.xs, t.ys, t.xq, t.n_classes, t.names, open_set=open_set, texts=texts)


def engine_method(model: CategoryModel) -> Method:
    """The engine (trained or plain model) as an evaluation method."""

    def run(t: Task) -> np.ndarray:
        return task_scores(model, t).pred

    return run


BASELINES: dict[str, Method] = {
    "tfidf-centroid": lambda t: baselines.tfidf_centroid(
        t.support_texts, t.ys, t.query_texts, t.n_classes
    ),
    "plain-prototypes": lambda t: baselines.plain_prototypes(t.xs, t.ys, t.xq, t.n_classes),
    "knn": lambda t: baselines.knn(t.xs, t.ys, t.xq, t.n_classes),
    "logreg": lambda t: baselines.logistic_regression(t.xs, t.ys, t.xq, t.n_classes),
}


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of the normal 95% interval."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return float(v.mean()) if len(v) else float("nan"), 0.0
    return float(v.mean()), float(1.96 * v.std(ddof=1) / np.sqrt(len(v)))


def macro_f1(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Macro-averaged F1 over the classes present in ``y`` (evaluate.metrics.macro_f1)."""
    from metarec_core.evaluate.metrics import macro_f1 as f1

    return f1(y, pred)


class HeldOut:
    """Embeddings, texts and labels of the held-out categories, and a task builder."""

    def __init__(
        self,
        x: np.ndarray,
        texts: list[str],
        labels: np.ndarray,
        names: np.ndarray,
        name_texts: Sequence[str] = (),
    ):
        self.x, self.texts, self.labels, self.names = x, texts, labels, names
        self.name_texts = list(name_texts)  # (C,) category names
        self.rows = {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}

    @classmethod
    def select(
        cls,
        x: np.ndarray,
        texts: Sequence[str],
        labels: np.ndarray,
        names: np.ndarray,
        name_texts: Sequence[str],
        mask: np.ndarray,
    ) -> HeldOut:
        """The items of a catalogue where ``mask`` (N,) is true, their categories renumbered
        0..C-1; ``labels`` (N,) index the catalogue's ``names`` (all categories, (K, D))."""
        ids = np.unique(labels[mask])
        local = -np.ones(len(names), np.int64)
        local[ids] = np.arange(len(ids))
        return cls(
            x[mask],
            [t for t, m in zip(texts, mask, strict=True) if m],
            local[labels[mask]],
            names[ids],
            [name_texts[i] for i in ids],
        )

    def task(
        self,
        classes: Sequence[int],
        k: int,
        rng: np.random.Generator,
        n_query: int | None,
        foreign: Sequence[int] = (),
    ) -> Task:
        """k shots per class; ``n_query`` queries per class (None = all the rest); foreign
        classes contribute all their items as queries labelled -1."""
        s, sl, q, ql = [], [], [], []
        for j, c in enumerate(classes):
            rows = rng.permutation(self.rows[int(c)])
            s.append(rows[:k])
            sl.append(np.full(k, j))
            rest = rows[k:] if n_query is None else rows[k : k + n_query]
            q.append(rest)
            ql.append(np.full(len(rest), j))
        for c in foreign:
            q.append(self.rows[int(c)])
            ql.append(np.full(len(self.rows[int(c)]), -1))
        s, q = np.concatenate(s), np.concatenate(q)
        return Task(
            xs=self.x[s],
            ys=np.concatenate(sl),
            xq=self.x[q],
            yq=np.concatenate(ql),
            names=self.names[np.asarray(classes)],
            support_texts=[self.texts[i] for i in s],
            query_texts=[self.texts[i] for i in q],
            n_classes=len(classes),
            name_texts=[self.name_texts[int(c)] for c in classes] if self.name_texts else [],
        )


def episodes_eval(
    data: HeldOut,
    methods: dict[str, Method],
    n_way: int,
    k: int,
    n_episodes: int,
    n_query: int = 15,
    seed: int = 0,
    progress: Progress = no_progress,
) -> list[dict]:
    """N-way k-shot episodes: accuracy per method (mean, 95% interval over episodes)."""
    rng = np.random.default_rng(seed)
    eligible = [c for c, r in data.rows.items() if len(r) > k]
    accs: dict[str, list[float]] = {m: [] for m in methods}
    for e in range(n_episodes):
        classes = rng.choice(eligible, size=min(n_way, len(eligible)), replace=False)
        t = data.task(classes, k, rng, n_query)
        for name, m in methods.items():
            accs[name].append(float((m(t) == t.yq).mean()))
        if e % 20 == 0:
            progress(ProgressEvent("evaluate", e + 1, n_episodes, f"{n_way}-way {k}-shot"))
    setting = f"{n_way}-way {k}-shot"
    return [_row(m, setting, "accuracy", v) for m, v in accs.items()]


def allway_eval(
    data: HeldOut, methods: dict[str, Method], k: int, repeats: int = 3, seed: int = 0
) -> list[dict]:
    """Every held-out category at once, k shots each, all their other items as queries."""
    rng = np.random.default_rng(seed)
    classes = [c for c, r in data.rows.items() if len(r) > k]
    acc: dict[str, list[float]] = {m: [] for m in methods}
    f1: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(repeats):
        t = data.task(classes, k, rng, None)
        for name, m in methods.items():
            p = m(t)
            acc[name].append(float((p == t.yq).mean()))
            f1[name].append(macro_f1(t.yq, p, t.n_classes))
    setting = f"all-way {k}-shot"
    return [_row(m, setting, "accuracy", acc[m]) for m in methods] + [
        _row(m, setting, "macro_f1", f1[m]) for m in methods
    ]


def open_set_eval(
    data: HeldOut,
    models: dict[str, CategoryModel],
    k: int,
    repeats: int = 3,
    seed: int = 0,
) -> list[dict]:
    """Half the held-out categories get k shots; the other half's items are mixed in as foreign.

    precision: of the queries given a category, share given the right one; recall: of the
    in-category queries, share given the right category; foreign_rejected: share of foreign
    queries answered "none of these".
    """
    rng = np.random.default_rng(seed)
    classes = [c for c, r in data.rows.items() if len(r) > k]
    out: dict[str, dict[str, list[float]]] = {}
    for _ in range(repeats):
        perm = rng.permutation(classes)
        known, foreign = perm[: len(perm) // 2], perm[len(perm) // 2 :]
        t = data.task(known, k, rng, None, foreign=foreign)
        for name, model in models.items():
            s = task_scores(model, t, open_set=True)
            given = s.pred >= 0
            correct = given & (s.pred == t.yq)
            inset = t.yq >= 0
            m = out.setdefault(name, {"precision": [], "recall": [], "foreign_rejected": []})
            m["precision"].append(float(correct.sum() / max(given.sum(), 1)))
            m["recall"].append(float(correct[inset].mean()))
            m["foreign_rejected"].append(float((~given[~inset]).mean()))
    setting = f"open-set {k}-shot"
    return [_row(n, setting, metric, v) for n, ms in out.items() for metric, v in ms.items()]


def one_category_eval(
    data: HeldOut,
    models: dict[str, CategoryModel],
    k: int,
    n_categories: int = 12,
    seed: int = 0,
) -> list[dict]:
    """One new category at a time among every other product: k shots of a held-out category,
    all the other held-out items as queries (its own rest and every other category's), open set.

    precision / recall / f1 of the category's accepted products, averaged over ``n_categories``
    categories drawn at random (those with at least k + 10 items).
    """
    rng = np.random.default_rng(seed)
    eligible = [c for c, r in data.rows.items() if len(r) >= k + 10]
    chosen = rng.choice(eligible, size=min(n_categories, len(eligible)), replace=False)
    out: dict[str, dict[str, list[float]]] = {}
    for c in chosen:
        rows = rng.permutation(data.rows[int(c)])
        others = np.flatnonzero(data.labels != c)
        query = np.concatenate([rows[k:], others])
        truth = np.concatenate([np.ones(len(rows) - k, bool), np.zeros(len(others), bool)])
        for name, model in models.items():
            s = score(model, data.x[rows[:k]], np.zeros(k, np.int64), data.x[query], 1,
                      data.names[[int(c)]], open_set=True)  # fmt: skip
            accepted = s.pred >= 0
            tp = float((accepted & truth).sum())
            p, r = tp / max(accepted.sum(), 1), tp / max(truth.sum(), 1)
            m = out.setdefault(name, {"precision": [], "recall": [], "f1": []})
            m["precision"].append(p)
            m["recall"].append(r)
            m["f1"].append(2 * p * r / max(p + r, 1e-12))
    setting = f"one category {k}-shot"
    return [_row(n, setting, metric, v) for n, ms in out.items() for metric, v in ms.items()]


def _row(method: str, setting: str, metric: str, values: Sequence[float]) -> dict:
    mean, ci = mean_ci(values)
    return {
        "method": method,
        "setting": setting,
        "metric": metric,
        "mean": mean,
        "ci95": ci,
        "n": len(values),
    }
