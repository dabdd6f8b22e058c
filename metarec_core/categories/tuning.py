"""When and how a few-shot task gets support tuning (see ``embed.support_tuning``).

Off by default (``CategoryConfig.tune_steps`` = 0): since label propagation's reach follows the
queries per category it no longer measurably helps. When turned on, one decision, used by
``classify`` and by the evaluation protocol alike, so what is measured is what users get: tune
only with the real MiniLM encoder, when categories are few and have few examples on average (it
helped 5-way tasks at 1 shot, did nothing at 5 shots and hurt all-way tasks of 15-30
categories), the queries are few enough to embed again, and the category names describe the
support (``tuner_for``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from metarec_core.categories.config import CategoryConfig
from metarec_core.categories.engine import Scores, merge_tuned, names_beat_chance, score
from metarec_core.categories.model import CategoryModel
from metarec_core.embed.encoder import MINILM_ID, MiniLMEncoder, get_encoder
from metarec_core.types import Progress, no_progress


def tunable_encoder(config: CategoryConfig, encoder=None) -> MiniLMEncoder | None:
    """The loaded MiniLM encoder to tune, or None when the task's encoder is not MiniLM.

    ``encoder`` may be None (the config's encoder), a ``MiniLMEncoder`` or a lazy MiniLM one.
    """
    if config.tune_steps <= 0:
        return None
    if isinstance(encoder, MiniLMEncoder):
        return encoder
    name = config.encoder if encoder is None else getattr(encoder, "model_id", None)
    if name not in ("minilm", MINILM_ID):
        return None
    found = get_encoder("minilm")
    return found if isinstance(found, MiniLMEncoder) else None


def wants_tuning(config: CategoryConfig, labels: np.ndarray, n_queries: int) -> bool:
    """True when the task is one support tuning is for (few categories, few examples each)."""
    if config.tune_steps <= 0 or n_queries == 0 or n_queries > config.tune_max_queries:
        return False
    counts = np.bincount(np.asarray(labels, np.int64))
    counts = counts[counts > 0]
    if not len(counts) or len(counts) > config.tune_max_categories:
        return False
    return float(counts.mean()) <= config.tune_max_shots


def names_describe(xs: np.ndarray, labels: np.ndarray, xn: np.ndarray) -> bool:
    """Whether category names (C, D) recognise the support (S, D) clearly better than chance:
    each example's most similar name is its own for at least 2 / C of the examples.

    The engine's 1-shot name-prior check also asks for a fifth of the examples; on the tasks
    tuning runs on (at most ``tune_max_categories`` = 10 categories) 2 / C is already at least a
    fifth, so the two checks agree there.
    """
    return names_beat_chance(xs, labels, xn)


def tuner_for(
    config: CategoryConfig,
    encoder,
    labels: np.ndarray,
    n_queries: int,
    xs: np.ndarray,
    xn: np.ndarray,
) -> tuple[MiniLMEncoder | None, bool]:
    """Whether to tune this task: (the encoder to tune, or None to score it untuned; whether
    tuning was due but skipped because the names do not describe the support).

    ``xs`` (S, D) and ``xn`` (C, D) are the support's and the category names' untuned embeddings.
    Each example is tuned towards its category's name, so the task is tuned only when the names,
    matched by similarity alone, recognise at least twice the share of examples that chance would
    (``names_describe``): meaningless names ("category 17") made tuning hurt (5-way 1-shot -0.035
    to -0.05 on held-out Instacart departments).
    """
    if not wants_tuning(config, labels, n_queries):
        return None, False
    tuner = tunable_encoder(config, encoder)
    if tuner is None:
        return None, False
    if not names_describe(xs, labels, xn):
        return None, True
    return tuner, False


def tuned_score(
    model: CategoryModel,
    encoder: MiniLMEncoder,
    support: Sequence[str],
    labels: np.ndarray,
    names: Sequence[str],
    queries: Sequence[str],
    open_set: bool = False,
    progress: Progress = no_progress,
) -> Scores:
    """Score one task with support tuning: classes from the tuned space; leave-one-out, the
    open-set threshold and "none of these" from the untuned one (``engine.merge_tuned``)."""
    from metarec_core.embed.support_tuning import TuningSettings, tune_and_embed

    cfg = model.config
    settings = TuningSettings(
        steps=cfg.tune_steps, lr=cfg.tune_lr, layers=cfg.tune_layers, seed=cfg.seed
    )
    before, after = tune_and_embed(encoder, support, labels, names, queries, settings, progress)
    n = len(names)
    untuned = score(model, before[0], labels, before[1], n, before[2], open_set=open_set)
    tuned = score(model, after[0], labels, after[1], n, after[2], open_set=False)
    return merge_tuned(tuned, untuned, model.temperature)


def describe(config: CategoryConfig) -> str:
    """One line for people: what support tuning did."""
    return (
        f"support tuning: {config.tune_steps} steps on the encoder's top {config.tune_layers} "
        f"layers with this support and the category names"
    )


NAMES_UNDESCRIPTIVE = (
    "support tuning: skipped, the category names do not recognise their own examples "
    "(tuning pulls each example towards its category's name)"
)
