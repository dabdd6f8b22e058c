"""Cold-start engine: meta-learned few-shot adaptation for new users, plus the baselines.

Public API (stable; imported lazily so ``import metarec_core.coldstart`` is cheap):

    ColdStartConfig(k=3, dim=64, inner_steps=2, inner_lr=0.5, first_order=True, epochs=3,
                    batch_size=256, seed=0, device="auto", ...)      frozen, validated
    train_model(interactions, items, config=None, progress=no_progress, encoder=None)
        -> ColdStartModel      canonical frames in (docs/CONTRACTS.md); encoder None = MiniLM
                               (cached); progress stages: embed, baselines, meta-train, pretrain
                               with metrics={"loss": ...} per meta-batch
    ColdStartModel.save(dir) / ColdStartModel.load(dir, device="auto", items=None)
    ColdStartModel.check_catalogue(items)      ConflictError for a catalogue it was not built for
    ColdStartModel.recommend(support, top=20, method="adapted", exclude_support=True)
        -> Recommendations     .frame (user_id, rank, item_id, score, explanation, fallback),
                               .fallback_users, .skipped_items, .skipped_by_user, .loss_curves
                               (user -> support loss before/after each inner step), .elapsed_s
    METHODS = ("adapted", "no-adapt", "finetune", "prototype", "popularity", "item-knn",
               "text-similarity", "ease")

Everything returned is CPU-side (numpy / pandas / floats). Evaluation lives in
``metarec_core.evaluate`` (``evaluate_dataset``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metarec_core.coldstart.config import ColdStartConfig

if TYPE_CHECKING:
    from metarec_core.coldstart.model import ColdStartModel
    from metarec_core.coldstart.recommend import Recommendations

METHODS = (
    "adapted",
    "no-adapt",
    "finetune",
    "prototype",
    "popularity",
    "item-knn",
    "text-similarity",
    "ease",
)

__all__ = ["METHODS", "ColdStartConfig", "ColdStartModel", "Recommendations", "train_model"]


def __getattr__(name: str):
    if name == "ColdStartModel":
        from metarec_core.coldstart.model import ColdStartModel

        return ColdStartModel
    if name == "Recommendations":
        from metarec_core.coldstart.recommend import Recommendations

        return Recommendations
    if name == "train_model":
        from metarec_core.coldstart.train import train_model

        return train_model
    raise AttributeError(name)
