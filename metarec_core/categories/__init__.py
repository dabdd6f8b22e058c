"""New-category engine: few-shot product classification with meta-trained prototypical networks.

Public API (all results are CPU-side numpy / pandas):

- ``CategoryConfig``: frozen settings, validated on construction; its ``engine`` block
  (``EngineConstants``) holds the measured constants of classification.
- ``train_category_model(items, config=None, progress=no_progress, encoder=None,
  category_column="category", text_column=None) -> CategoryModel``: embed a labelled catalogue
  (cached) and meta-train the residual projection episodically on its categories; the projection
  is kept only if it beats the encoder space on held-back groups of categories.
- ``model_encoder(model, requested=None) -> str``: the registry name of the encoder a model
  classifies with (its own; one-line errors for another one or one not installed).
- ``CategoryModel``: ``.save(dir)`` / ``CategoryModel.load(dir)`` (config.json,
  projection.safetensors, training_report.json); ``CategoryModel.plain()`` = the plain-prototype
  baseline; ``CategoryModel.untrained()`` = encoder space with centring, name prior, hub
  correction and label propagation (a second round from re-estimated prototypes when each
  category has few queries); what ``classify`` uses when no trained model exists.
- ``default_model_dir()`` / ``load_default_model()``: where ``train-categories --default``
  writes, and the model ``classify`` uses when none is given (None if absent).
- ``classify(support, query, model=None, open_set=False, encoder=None, progress=...) ->
  Classification``: support = item_id, title (or name), category; query = item_id, title;
  ``model=None`` means ``CategoryModel.untrained()``.
  ``.predictions`` has item_id, category (None = "none of these"), confidence; also
  ``.prototypes``, ``.threshold``, ``.leave_one_out``, ``.model_used``, ``.used_names``.
- Validation aids on a Classification: ``leave_one_out``, ``confusion``,
  ``closest_to_prototypes``, ``label_next``.
- ``evaluate_categories(items, category_column, held_out, group_column=None, ...) ->
  CategoryEvalReport``: meta-train on the other categories, then episodes, all-way and open-set
  results on the held-out ones with baselines side by side (``report.table``, ``report.pivot()``).

Submodules are imported lazily so ``import metarec_core.categories`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "CategoryConfig": "metarec_core.categories.config",
    "CategoryModel": "metarec_core.categories.model",
    "model_encoder": "metarec_core.categories.model",
    "train_category_model": "metarec_core.categories.train",
    "classify": "metarec_core.categories.classifier",
    "Classification": "metarec_core.categories.classifier",
    "leave_one_out": "metarec_core.categories.aids",
    "confusion": "metarec_core.categories.aids",
    "closest_to_prototypes": "metarec_core.categories.aids",
    "label_next": "metarec_core.categories.aids",
    "evaluate_categories": "metarec_core.categories.protocol",
    "CategoryEvalReport": "metarec_core.categories.evaluate",
    "default_model_dir": "metarec_core.categories.defaults",
    "load_default_model": "metarec_core.categories.defaults",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from metarec_core.categories.aids import (
        closest_to_prototypes,
        confusion,
        label_next,
        leave_one_out,
    )
    from metarec_core.categories.classifier import Classification, classify
    from metarec_core.categories.config import CategoryConfig
    from metarec_core.categories.defaults import default_model_dir, load_default_model
    from metarec_core.categories.evaluate import CategoryEvalReport
    from metarec_core.categories.model import CategoryModel, model_encoder
    from metarec_core.categories.protocol import evaluate_categories
    from metarec_core.categories.train import train_category_model


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'metarec_core.categories' has no attribute {name!r}")
