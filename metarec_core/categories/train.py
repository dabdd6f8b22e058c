"""train_category_model(): embed a labelled catalogue and meta-train the projection on it.

A share of the categories is held back first to measure transfer (trained vs plain prototypes on
categories the projection never saw) and to calibrate the 1-shot open-set threshold; the final
projection is then meta-trained on every category.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from metarec_core.categories.config import CategoryConfig
from metarec_core.categories.engine import score
from metarec_core.categories.episodes import EpisodeSampler
from metarec_core.categories.metatrain import meta_train
from metarec_core.categories.model import CategoryModel
from metarec_core.embed.encoder import TextEncoder
from metarec_core.errors import ValidationError
from metarec_core.types import Progress, ProgressEvent, no_progress

log = logging.getLogger(__name__)

VALIDATION_SHARE = 0.15
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
    df = df.dropna()
    df["text"] = df["text"].astype(str).str.strip()
    df["category"] = df["category"].astype(str).str.strip()
    df = df[(df["text"] != "") & (df["category"] != "")]
    counts = df["category"].value_counts()
    df = df[df["category"].isin(counts[counts >= MIN_CATEGORY_ITEMS].index)]
    if df["category"].nunique() < 5:
        raise ValidationError(
            f"items: need at least 5 categories with {MIN_CATEGORY_ITEMS}+ products to meta-train, "
            f"found {df['category'].nunique()} in column '{category_column}'"
        )
    return df.reset_index(drop=True)


def _transfer_check(model: CategoryModel, x, y, names, classes, seed: int) -> dict:
    """5-way 1/5-shot accuracy of the model vs plain prototypes on ``classes`` (never trained on)."""
    plain = CategoryModel.plain(encoder_id=model.encoder_id)
    rng = np.random.default_rng(seed)
    sampler = EpisodeSampler(np.where(np.isin(y, classes), y, -1), min_items=6, seed=seed)
    sampler.rows.pop(-1, None)
    out: dict = {}
    in_sims: list[float] = []
    if sampler.n_classes < 3:
        return out
    for k in (1, 5):
        acc_m, acc_p = [], []
        for _ in range(60):
            ep = sampler.sample(5, k, 15)
            n = len(ep.classes)
            xn = names[ep.classes] if names is not None else None
            s = score(model, x[ep.support], ep.support_labels, x[ep.query], n, xn)
            p = score(plain, x[ep.support], ep.support_labels, x[ep.query], n)
            acc_m.append(float((s.pred == ep.query_labels).mean()))
            acc_p.append(float((p.pred == ep.query_labels).mean()))
            if k == 1:
                own = s.sims[np.arange(len(ep.query)), ep.query_labels]
                in_sims.extend(own.tolist())
        out[f"5way_{k}shot"] = {"trained": float(np.mean(acc_m)), "plain": float(np.mean(acc_p))}
    out["in_category_sim_1shot_q"] = float(np.quantile(in_sims, model.config.open_set_quantile))
    del rng
    return out


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

    rng = np.random.default_rng(config.seed)
    n_val = max(2, int(round(VALIDATION_SHARE * len(categories)))) if len(categories) >= 12 else 0
    val = rng.choice(len(categories), size=n_val, replace=False) if n_val else np.array([], int)
    validation: dict = {}
    if n_val:
        keep = ~np.isin(y, val)
        remap = -np.ones(len(categories), np.int64)
        train_ids = np.setdiff1d(np.arange(len(categories)), val)
        remap[train_ids] = np.arange(len(train_ids))
        proj, _ = meta_train(
            x[keep], remap[y[keep]], names[train_ids], config, _stage(progress, "validate-train")
        )
        trial = CategoryModel(
            config, proj.as_matrix(), proj.log_temperature.exp().item(), encoder_id
        )
        validation = _transfer_check(trial, x, y, names, val, config.seed)
        validation["held_back_categories"] = [categories[i] for i in val]
        progress(ProgressEvent("validate", 1, 1, "transfer check done"))

    proj, history = meta_train(x, y, names, config, progress)
    report = {
        "kind": "trained",
        "n_items": int(len(df)),
        "n_categories": len(categories),
        "categories": categories,
        "category_column": category_column,
        "history": history,
        "validation": validation,
        "open_set_threshold_1shot": validation.get("in_category_sim_1shot_q"),
        "seconds": {"embed": round(t_embed, 2), "total": round(time.monotonic() - started, 2)},
    }
    return CategoryModel(config, proj.as_matrix(), history["temperature"], encoder_id, report)


def _stage(progress: Progress, stage: str) -> Progress:
    def relabel(e: ProgressEvent) -> None:
        progress(ProgressEvent(stage, e.current, e.total, e.message, e.metrics))

    return relabel


def _encoder_id(name: str) -> str:
    from metarec_core.embed.encoder import get_encoder

    return get_encoder(name).model_id
