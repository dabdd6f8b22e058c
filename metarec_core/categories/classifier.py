"""classify(): few-shot classification of query products given a labelled support set.

DataFrames in, a Classification out (CPU-side numpy / pandas only). Validates the input with
one clear message per problem; empty titles are skipped and counted, not fatal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from metarec_core.categories.engine import Scores, score
from metarec_core.categories.model import CategoryModel
from metarec_core.embed.encoder import TextEncoder
from metarec_core.errors import ValidationError
from metarec_core.types import Progress, no_progress

log = logging.getLogger(__name__)

TITLE_COLUMNS = ("title", "name", "text", "product_name", "item_name")
ID_COLUMNS = ("item_id", "id", "product_id", "sku", "asin")
CATEGORY_COLUMNS = ("category", "label", "aisle", "class")


@dataclass
class Classification:
    """Result of ``classify``.

    Attributes:
        predictions: item_id, category (None = "none of these" under open set), confidence.
        categories: category names, in prototype order.
        prototypes: (C, D) unit prototypes in the model's space.
        threshold: open-set similarity threshold (None when closed set).
        leave_one_out: leave-one-out accuracy on the support alone (None if not estimable).
        model_used: which model was used, for people (``CategoryModel.description``).
        used_names: whether the category names were used as a prior (decided on the support).
        skipped_empty: support and query rows skipped because their title was empty.
        support: the cleaned support (item_id, title, category).
        query: the cleaned query (item_id, title).
        scores: the engine's full numeric result (similarities, probabilities, LOO per item).
        script_warning: one line when many titles are in a script the encoder does not know.
    """

    predictions: pd.DataFrame
    categories: list[str]
    prototypes: np.ndarray
    threshold: float | None
    leave_one_out: float | None
    model_used: str
    used_names: bool
    skipped_empty: dict[str, int] = field(default_factory=dict)
    support: pd.DataFrame | None = None
    query: pd.DataFrame | None = None
    scores: Scores | None = None
    script_warning: str | None = None


def _column(df: pd.DataFrame, candidates: tuple[str, ...], role: str, what: str) -> str:
    lower = {str(c).strip().lower(): c for c in df.columns}
    for c in candidates:
        if c in lower:
            return lower[c]
    raise ValidationError(
        f"{what}: missing column {role} (accepted: {', '.join(candidates)}); "
        f"found {', '.join(map(str, df.columns)) or 'no columns'}"
    )


def clean_frame(df: pd.DataFrame, what: str, with_category: bool) -> tuple[pd.DataFrame, int]:
    """Normalise to item_id, title[, category] (str); drop empty titles; returns (frame, skipped)."""
    ids = df[_column(df, ID_COLUMNS, "item_id", what)]
    titles = df[_column(df, TITLE_COLUMNS, "title", what)]
    out = pd.DataFrame({"item_id": ids.astype(object), "title": titles.astype(object)})
    if out["item_id"].isna().any() or out["item_id"].astype(str).str.strip().eq("").any():
        raise ValidationError(f"{what}: some rows have an empty item_id")
    out["item_id"] = _id_texts(ids)
    out["title"] = _texts(titles)
    if with_category:
        out["category"] = _texts(df[_column(df, CATEGORY_COLUMNS, "category", what)])
        if out["category"].eq("").any():
            n = int(out["category"].eq("").sum())
            raise ValidationError(f"{what}: {n} row(s) have an empty category")
    dup = out["item_id"].duplicated()
    if dup.any():
        raise ValidationError(
            f"{what}: {int(dup.sum())} duplicate item id(s), e.g. {out['item_id'][dup].iloc[0]}"
        )
    empty = out["title"].eq("")
    return out[~empty].reset_index(drop=True), int(empty.sum())


def _texts(values: pd.Series) -> pd.Series:
    """Values as stripped text (object dtype), missing ones as ""."""
    text = values.astype(object).where(values.notna(), "").astype(str).str.strip()
    return text.astype(object)


def _id_texts(ids: pd.Series) -> pd.Series:
    """Ids as text: integers (also those read as floats, 12.0) without a decimal point."""
    if pd.api.types.infer_dtype(ids, skipna=True) in ("string", "integer"):
        return _texts(ids)
    return ids.map(_id_text).astype(object)


def _id_text(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def check_inputs(
    support: pd.DataFrame, query: pd.DataFrame, open_set: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Clean and cross-check support and query; raise one clear ValidationError on bad input.

    A single category is enough with ``open_set`` (which products belong to it, which do not);
    choosing among categories needs two.
    """
    if support is None or len(support) == 0:
        raise ValidationError("support: no rows (need at least 1 labelled example per category)")
    s, s_empty = clean_frame(support, "support", with_category=True)
    q, q_empty = clean_frame(query, "query", with_category=False)
    if s.empty:
        raise ValidationError("support: every title is empty")
    counts = s["category"].value_counts()
    raw = support[_column(support, CATEGORY_COLUMNS, "category", "support")]
    lost = sorted(set(raw.dropna().astype(str).str.strip()) - set(counts.index) - {""})
    if lost:
        raise ValidationError(
            f"support: category '{lost[0]}' has fewer than 1 example with a non-empty title"
        )
    if len(counts) < 2 and not open_set:
        raise ValidationError(
            f"support: only 1 category ('{counts.index[0]}'); choosing among categories needs at "
            "least 2, or use the open set (--open-set) to find which products belong to it"
        )
    both = set(s["item_id"]) & set(q["item_id"])
    if both:
        raise ValidationError(
            f"{len(both)} item id(s) appear in both support and query, e.g. {sorted(both)[0]}"
        )
    return s, q, {"support": s_empty, "query": q_empty}


def _check_encoder(model: CategoryModel, encoder: TextEncoder | None) -> None:
    """A trained model classifies only with the encoder it was trained with."""
    if encoder is None or not model.encoder_id or encoder.model_id == model.encoder_id:
        return
    raise ValidationError(
        f"the category model was trained with {model.encoder_id}, not {encoder.model_id}: "
        "classify with the model's own encoder"
    )


def _check_dim(model: CategoryModel, dim: int) -> None:
    if model.matrix is not None and model.matrix.shape[0] != dim:
        raise ValidationError(
            f"the category model expects {model.matrix.shape[0]}-d embeddings "
            f"({model.encoder_id or model.config.encoder}), the encoder gives {dim}-d"
        )


def classify(
    support: pd.DataFrame,
    query: pd.DataFrame,
    model: CategoryModel | None = None,
    open_set: bool = False,
    encoder: TextEncoder | None = None,
    progress: Progress = no_progress,
    cache_dir=None,
    threshold_shift: float = 0.0,
) -> Classification:
    """Assign each query product to one of the support's categories (or "none" under open set).

    Args:
        support: item_id, title (or name), category; k >= 1 examples per category; at least 2
            categories, or 1 with ``open_set``.
        query: item_id, title (or name); extra columns are ignored.
        model: a trained CategoryModel; None = ``CategoryModel.untrained()`` (encoder space,
            centring, name prior, label propagation; no meta-training).
        open_set: answer "none of these" (category None) below the leave-one-out threshold.
        encoder: the text encoder (default: the model's, ``get_encoder(model.config.encoder)``);
            a trained model refuses another one. Embeddings are cached.
        progress: callback for the embedding stage.
        cache_dir: embedding cache folder (default Paths().cache_dir).
        threshold_shift: open set only: added to the engine's similarity threshold (> 0 for
            precision, < 0 for recall; the Category Lab's slider).
    """
    from metarec_core.embed.service import embed_texts

    s, q, skipped = check_inputs(support, query, open_set)
    model = model or CategoryModel.untrained()
    _check_encoder(model, encoder)
    categories = sorted(s["category"].unique())
    index = {c: i for i, c in enumerate(categories)}
    ys = s["category"].map(index).to_numpy(np.int64)
    titles, queries = s["title"].tolist(), q["title"].tolist()

    def embed(texts: list[str]) -> np.ndarray:
        x = embed_texts(
            texts,
            encoder=encoder,
            name=model.config.encoder,
            cache_dir=cache_dir,
            progress=progress,
        )
        _check_dim(model, x.shape[1])
        return x

    x = embed(titles + categories)  # (S + C, D): the support and the category names
    xs, xn = x[: len(s)], x[len(s) :]
    result = score(
        model, xs, ys, embed(queries), len(categories), xn, open_set, threshold_shift,
        texts=titles + queries,
    )  # fmt: skip
    cats = np.asarray(categories, dtype=object)
    label = np.where(result.pred >= 0, cats[np.maximum(result.pred, 0)], None)
    predictions = pd.DataFrame(
        {
            "item_id": pd.Series(q["item_id"].to_numpy(), dtype=object),
            "category": pd.Series(label, dtype=object),
            "confidence": result.confidence,
        }
    )
    if skipped["support"] or skipped["query"]:
        log.warning("skipped rows with empty titles: %s", skipped)
    from metarec_core.embed.script import script_warning

    warning = script_warning(
        titles + queries, encoder.model_id if encoder else model.config.encoder
    )
    return Classification(
        predictions=predictions,
        categories=categories,
        prototypes=result.protos,
        threshold=result.threshold,
        leave_one_out=result.loo_accuracy,
        model_used=model.description,
        used_names=result.used_names,
        skipped_empty=skipped,
        support=s,
        query=q,
        scores=result,
        script_warning=warning,
    )
