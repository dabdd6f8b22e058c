"""train_category_model(): embed a labelled catalogue and meta-train the projection on it.

Groups of similar categories are held back first to measure transfer: the projection trained
without them against the encoder space, both with the same classification steps, on categories
the projection never saw. The projection is kept (and re-trained on every category) only when it
wins there by MIN_GAIN; otherwise the model keeps the encoder space and says so. The held-back
run also sets the 1-shot open-set fallback threshold.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from metarec_core.categories.config import CategoryConfig
from metarec_core.categories.engine import score
from metarec_core.categories.metatrain import meta_train
from metarec_core.categories.model import PLAIN_TEMPERATURE, CategoryModel
from metarec_core.categories.protonet import l2n, prototypes
from metarec_core.embed.encoder import TextEncoder
from metarec_core.errors import ValidationError
from metarec_core.types import Progress, ProgressEvent, no_progress

log = logging.getLogger(__name__)

VALIDATION_SHARE = 0.15
VALIDATION_EPISODES = 60  # 5-way episodes per k in the transfer check
MIN_GAIN = 0.01  # mean accuracy gain on held-back categories needed to keep the projection
MIN_CATEGORY_ITEMS = 2


def prepare_items(
    items: pd.DataFrame, category_column: str = "category", text_column: str | None = None
) -> pd.DataFrame:
    """text, category (str) rows with both present; clear errors for missing columns."""
    if text_column is None:
        for c in ("text", "title", "name", "product_name"):
            if c in items.columns:
                text_column = c
                break
    missing = [c for c in (text_column, category_column) if c is None or c not in items.columns]
    if missing:
        want = "text column (text, title or name)" if text_column is None else f"'{missing[0]}'"
        raise ValidationError(f"items: missing {want}; found {', '.join(map(str, items.columns))}")
    df = pd.DataFrame({"text": items[text_column], "category": items[category_column]})
    df = df.fillna("")
    df["text"] = df["text"].astype(str).str.strip()
    df["category"] = df["category"].astype(str).str.strip()
    no_text = int(((df["text"] == "") & (df["category"] != "")).sum())
    df = df[(df["text"] != "") & (df["category"] != "")]
    counts = df["category"].value_counts()
    df = df[df["category"].isin(counts[counts >= MIN_CATEGORY_ITEMS].index)]
    if df["category"].nunique() < 5:
        empty = (
            f"; {no_text:,} labelled product(s) have no text in '{text_column}'" if no_text else ""
        )
        raise ValidationError(
            f"items: need at least 5 categories with {MIN_CATEGORY_ITEMS}+ products to meta-train, "
            f"found {df['category'].nunique()} in column '{category_column}'{empty}"
        )
    return df.reset_index(drop=True)


def validation_split(x: np.ndarray, y: np.ndarray, n_categories: int, seed: int) -> np.ndarray:
    """Categories to hold back: whole clusters of similar categories (pseudo-departments).

    Holding back random categories would leave their siblings in training and flatter the
    projection; new categories usually come as a new group, so validation holds back groups.
    """
    from sklearn.cluster import AgglomerativeClustering

    means = l2n(prototypes(x, y, n_categories))  # (C, D)
    n_groups = max(3, round(n_categories / 7))
    groups = AgglomerativeClustering(
        n_clusters=n_groups, metric="cosine", linkage="average"
    ).fit_predict(means)
    rng = np.random.default_rng(seed)
    want = max(5, round(VALIDATION_SHARE * n_categories))
    held: list[int] = []
    for g in rng.permutation(n_groups):
        if len(held) >= want:
            break
        members = np.flatnonzero(groups == g).tolist()
        if len(held) + len(members) <= max(want * 2, 8):
            held += members
    return np.array(sorted(held), dtype=np.int64)


def _transfer_check(
    trained: CategoryModel, x, y, names, classes, seed: int, progress: Progress
) -> dict:
    """Trained projection vs the encoder space (same steps) on categories never trained on.

    5-way 1/5-shot episodes and all-way 5-shot with the full classification pipeline; also the
    1-shot in-category similarity quantile used as the open-set fallback threshold.
    """
    from metarec_core.categories import evaluate as ev

    untrained = CategoryModel.untrained(trained.config, trained.encoder_id)
    local = -np.ones(int(y.max()) + 1, np.int64)
    local[classes] = np.arange(len(classes))
    keep = np.isin(y, classes)
    data = ev.HeldOut(x[keep], [""] * int(keep.sum()), local[y[keep]], names[classes])
    methods = {"trained": ev.engine_method(trained), "untrained": ev.engine_method(untrained)}
    rows = ev.episodes_eval(data, methods, 5, 1, VALIDATION_EPISODES, seed=seed, progress=progress)
    rows += ev.episodes_eval(
        data, methods, 5, 5, VALIDATION_EPISODES, seed=seed + 1, progress=progress
    )
    rows += [r for r in ev.allway_eval(data, methods, 5, 1, seed=seed) if r["metric"] == "accuracy"]
    out: dict = {}
    for r in rows:
        key = r["setting"].replace(" ", "_").replace("-", "")
        out.setdefault(key, {})[r["method"]] = round(r["mean"], 4)
    out["in_category_sim_1shot_q"] = {
        name: _own_sim_quantile(m, data, seed)
        for name, m in (("trained", trained), ("untrained", untrained))
    }
    return out


def _own_sim_quantile(model: CategoryModel, data, seed: int) -> float:
    """Low quantile of 1-shot queries' similarity to their own prototype (open-set fallback)."""
    rng = np.random.default_rng(seed)
    own: list[float] = []
    for _ in range(max(VALIDATION_EPISODES // 2, 1)):
        classes = rng.choice(list(data.rows), min(5, len(data.rows)), replace=False)
        t = data.task(classes, 1, rng, 10)
        s = score(model, t.xs, t.ys, t.xq, t.n_classes, t.names)
        own.extend(s.sims[np.arange(len(t.yq)), t.yq].tolist())
    return float(np.quantile(own, model.config.engine.open_set_quantile))


def fit_projection(
    x: np.ndarray,
    y: np.ndarray,
    names: np.ndarray,
    categories: list[str],
    config: CategoryConfig,
    encoder_id: str = "",
    progress: Progress = no_progress,
) -> tuple[np.ndarray | None, float, dict, dict]:
    """Meta-train the projection on embeddings ``x`` (N, D) with labels ``y`` (N,) and keep it
    only if it transfers to held-back groups of categories (with fewer than 12 categories none
    can be held back, and the encoder space is kept).

    Returns (matrix or None for the encoder space, temperature, history, validation report).
    """
    validation: dict = {}
    use_projection = config.rank > 0 and config.episodes > 0
    n = len(categories)
    val = validation_split(x, y, n, config.seed) if n >= 12 else np.array([], np.int64)
    if use_projection and len(val):
        keep = ~np.isin(y, val)
        remap = -np.ones(len(categories), np.int64)
        train_ids = np.setdiff1d(np.arange(len(categories)), val)
        remap[train_ids] = np.arange(len(train_ids))
        proj, hist = meta_train(
            x[keep], remap[y[keep]], names[train_ids], config, _stage(progress, "validate-train")
        )
        trial = CategoryModel(config, proj.as_matrix(), hist["temperature"], encoder_id)
        validation = _transfer_check(
            trial, x, y, names, val, config.seed, _stage(progress, "validate")
        )
        validation["held_back_categories"] = [categories[i] for i in val]
        gains = [v["trained"] - v["untrained"] for k, v in validation.items() if "way" in k]
        use_projection = bool(np.mean(gains) >= MIN_GAIN)
        validation["projection_kept"] = use_projection
        which = "trained" if use_projection else "untrained"
        validation["open_set_threshold_1shot"] = validation["in_category_sim_1shot_q"][which]
        log.info("projection %s on held-back categories: %s", "kept" if use_projection else
                 "dropped", validation)  # fmt: skip

    unchecked = use_projection and not len(val)  # too few categories to hold some back
    if use_projection and not unchecked:
        proj, history = meta_train(x, y, names, config, progress)
        matrix, temperature = proj.as_matrix(), history["temperature"]
    else:  # the encoder space with the training-free steps (what validation preferred)
        if unchecked:
            why = f"cannot be checked on held-back categories with {n} (12 or more needed)"
        elif validation:
            why = "did not transfer"
        else:
            why = "is disabled (rank or episodes 0)"
        history = {"episodes": 0, "note": f"learned projection {why}; encoder space kept"}
        matrix, temperature = None, PLAIN_TEMPERATURE
    return matrix, temperature, history, validation


def train_category_model(
    items: pd.DataFrame,
    config: CategoryConfig | None = None,
    progress: Progress = no_progress,
    encoder: TextEncoder | None = None,
    category_column: str = "category",
    text_column: str | None = None,
    cache_dir=None,
) -> CategoryModel:
    """Meta-train a CategoryModel on a labelled catalogue (categories with 2+ products).

    Args:
        items: one row per product with a text (text/title/name) and a category column.
        config: CategoryConfig (defaults run on a CPU in well under a minute after embedding).
        progress: callback for the "embed", "meta-train" and "validate" stages.
        encoder: text encoder (default ``get_encoder(config.encoder)``).
        category_column / text_column: column names in ``items``.
        cache_dir: embedding cache folder (default Paths().cache_dir).
    """
    from metarec_core.embed.service import embed_texts

    config = config or CategoryConfig()
    started = time.monotonic()
    df = prepare_items(items, category_column, text_column)
    categories = sorted(df["category"].unique())
    index = {c: i for i, c in enumerate(categories)}
    y = df["category"].map(index).to_numpy(np.int64)
    enc_name = config.encoder
    x = embed_texts(df["text"].tolist(), encoder, enc_name, cache_dir, progress=progress)
    names = embed_texts(categories, encoder, enc_name, cache_dir)
    encoder_id = encoder.model_id if encoder is not None else _encoder_id(enc_name)
    t_embed = time.monotonic() - started

    matrix, temperature, history, validation = fit_projection(
        x, y, names, categories, config, encoder_id, progress
    )
    report = {
        "kind": "trained",
        "n_items": len(df),
        "n_categories": len(categories),
        "categories": categories,
        "category_column": category_column,
        "history": history,
        "validation": validation,
        "open_set_threshold_1shot": validation.get("open_set_threshold_1shot"),
        "seconds": {"embed": round(t_embed, 2), "total": round(time.monotonic() - started, 2)},
    }
    return CategoryModel(config, matrix, temperature, encoder_id, report)


def _stage(progress: Progress, stage: str) -> Progress:
    def relabel(e: ProgressEvent) -> None:
        progress(ProgressEvent(stage, e.current, e.total, e.message, e.metrics))

    return relabel


def _encoder_id(name: str) -> str:
    from metarec_core.embed.encoder import get_encoder

    return get_encoder(name).model_id
