"""evaluate_categories(): the full protocol on one split of categories, baselines side by side."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from metarec_core.categories import evaluate as ev
from metarec_core.categories.config import CategoryConfig
from metarec_core.categories.model import CategoryModel
from metarec_core.categories.train import fit_projection
from metarec_core.embed.encoder import TextEncoder
from metarec_core.errors import ValidationError
from metarec_core.types import Progress, no_progress


def evaluate_categories(
    items: pd.DataFrame,
    category_column: str = "category",
    held_out: Sequence[str] = (),
    group_column: str | None = None,
    text_column: str = "text",
    config: CategoryConfig | None = None,
    shots: Sequence[int] = (1, 5),
    n_episodes: int = 200,
    n_way: int = 5,
    allway_repeats: int = 3,
    baselines: bool = True,
    encoder: TextEncoder | None = None,
    cache_dir=None,
    progress: Progress = no_progress,
) -> ev.CategoryEvalReport:
    """Meta-train on the categories outside ``held_out`` and evaluate on the held-out ones.

    Args:
        items: catalogue with ``text_column`` and ``category_column`` (and ``group_column``).
        held_out: values of ``group_column`` (e.g. departments) or, without it, categories.
        shots: k values for the episode, all-way and open-set settings.
        n_episodes: N-way k-shot episodes per k (mean and 95% interval over episodes).
        allway_repeats: support draws for the all-way and open-set settings.
        baselines: also run TF-IDF centroids, plain prototypes, kNN and logistic regression.
    """
    from metarec_core.embed.service import embed_texts

    config = config or CategoryConfig()
    df = items[[text_column, category_column] + ([group_column] if group_column else [])].dropna()
    df = df[df[text_column].astype(str).str.strip() != ""]
    key = df[group_column] if group_column else df[category_column]
    mask = key.isin(list(held_out)).to_numpy()
    if not mask.any() or mask.all():
        raise ValidationError("evaluate_categories: held_out must select some but not all items")
    cats = sorted(df[category_column].astype(str).unique())
    index = {c: i for i, c in enumerate(cats)}
    y = df[category_column].astype(str).map(index).to_numpy(np.int64)
    texts = df[text_column].astype(str).tolist()
    x = embed_texts(texts, encoder, config.encoder, cache_dir, progress=progress)
    names = embed_texts(cats, encoder, config.encoder, cache_dir)

    train_ids = np.unique(y[~mask])
    remap = -np.ones(len(cats), np.int64)
    remap[train_ids] = np.arange(len(train_ids))
    started = time.monotonic()
    matrix, temperature, history, validation = fit_projection(
        x[~mask], remap[y[~mask]], names[train_ids], [cats[i] for i in train_ids], config, "",
        progress,
    )  # fmt: skip
    train_s = time.monotonic() - started
    report = {
        "kind": "trained",
        "open_set_threshold_1shot": validation.get("open_set_threshold_1shot"),
    }
    model = CategoryModel(config, matrix, temperature, "", report)
    plain = CategoryModel.plain()

    data = ev.HeldOut.select(x, texts, y, names, cats, mask)
    methods: dict[str, ev.Method] = {"metarec": ev.engine_method(model)}
    if baselines:
        methods.update(ev.BASELINES)
    rows: list[dict] = []
    for k in shots:
        rows += ev.episodes_eval(data, methods, n_way, k, n_episodes, seed=k, progress=progress)
        rows += ev.allway_eval(data, methods, k, allway_repeats, seed=k)
        rows += ev.open_set_eval(
            data, {"metarec": model, "plain-prototypes": plain}, k, allway_repeats, seed=k
        )
        rows += ev.one_category_eval(data, {"metarec": model, "plain-prototypes": plain}, k, seed=k)
    info = {
        "held_out": list(held_out),
        "held_out_categories": list(data.name_texts),
        "n_train_categories": len(train_ids),
        "n_test_items": int(mask.sum()),
        "meta_train_seconds": round(train_s, 1),
        "history": history,
        "validation": validation,
        "projection_kept": matrix is not None,
    }
    return ev.CategoryEvalReport(pd.DataFrame(rows), info)
