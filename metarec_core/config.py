"""Project-wide paths and defaults (frozen; engine-specific configs live beside their engines)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_data_dir() -> Path:
    return Path(os.environ.get("METAREC_DATA_DIR", PROJECT_ROOT / "data"))


@dataclass(frozen=True)
class Paths:
    """Where MetaRec keeps its files. Override the root with METAREC_DATA_DIR or explicit paths."""

    data_dir: Path = field(default_factory=_default_data_dir)

    @property
    def db_path(self) -> Path:
        """The DuckDB store (env METAREC_DB overrides)."""
        return Path(os.environ.get("METAREC_DB", self.data_dir / "metarec.duckdb"))

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"


SHARED_DATASETS_DIR = Path(
    os.environ.get("METAREC_SHARED_DATASETS", PROJECT_ROOT.parent / "shared" / "datasets")
)
