"""The default category model: where it lives and how classify finds it."""

from __future__ import annotations

import logging
from pathlib import Path

from metarec_core.categories.model import CONFIG_FILE, CategoryModel

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "categories-default"


def default_model_dir() -> Path:
    """``Paths().models_dir / "categories-default"`` (follows METAREC_DATA_DIR)."""
    from metarec_core.config import Paths

    return Paths().models_dir / DEFAULT_MODEL_NAME


def load_default_model() -> CategoryModel | None:
    """The default trained model, or None when none has been trained on this machine."""
    d = default_model_dir()
    if not (d / CONFIG_FILE).exists():
        return None
    try:
        return CategoryModel.load(d)
    except Exception as exc:  # noqa: BLE001 - a broken default must not break classify
        log.warning("ignoring unreadable default category model at %s: %s", d, exc)
        return None
