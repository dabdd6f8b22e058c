"""The model registry's files: each model folder's ``metarec_meta.json`` and the list of folders
trained outside the data directory (``<models_dir>/external.json``).

Jobs (the app's training), the command line and services all write and read models through
these few functions, so a model trained anywhere carries the same metadata and is listed in one
place. Pure file handling: nothing here imports the engines, jobs or services.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from metarec_core.config import Paths

META_FILE = "metarec_meta.json"
EXTERNAL_FILE = "external.json"


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def refuse_other_kind(directory: Path, fmt: str) -> None:
    """ValidationError when ``directory`` holds a model of another kind than ``fmt`` (e.g.
    "metarec-categories/1" over a cold-start model), so writing one never corrupts the other."""
    from metarec_core.errors import ValidationError

    meta = read_json(Path(directory) / "config.json")
    found = str(meta.get("format", "")) if isinstance(meta, dict) else ""
    if found and found.split("/")[0] != fmt.split("/")[0]:
        raise ValidationError(
            f"{directory} holds another kind of model ({found}): choose another folder"
        )


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def model_meta(
    name: str,
    kind: str,
    dataset: str,
    n_items: int,
    config: dict | None = None,
    source: str = "app",
    **extra: Any,
) -> dict:
    """The metadata every model folder carries (``extra``: job_id, device, encoder, label ...)."""
    return {
        "name": name,
        "dataset": dataset,
        "kind": kind,
        "created": time.time(),
        "n_items": int(n_items),
        "config": dict(config or {}),
        "source": source,
        **extra,
    }


def write_meta(model_dir: Path, meta: dict) -> None:
    """Write ``metarec_meta.json`` into a model folder."""
    write_json(Path(model_dir) / META_FILE, meta)


def register_external(paths: Paths, model_dir: Path) -> None:
    """Remember a model folder that lies outside ``<models_dir>/<dataset>/<name>`` (the command
    line's ``--out DIR``, the default category model)."""
    model_dir = Path(model_dir).resolve()
    if model_dir.parent.parent == paths.models_dir.resolve():  # found by the folder scan
        return
    listed = external_dirs(paths)
    if model_dir in listed:
        return
    paths.models_dir.mkdir(parents=True, exist_ok=True)
    write_json(paths.models_dir / EXTERNAL_FILE, [str(p) for p in [*listed, model_dir]])


def external_dirs(paths: Paths) -> list[Path]:
    """The registered folders outside the data directory (missing ones included)."""
    data = read_json(paths.models_dir / EXTERNAL_FILE)
    return [Path(p) for p in data if isinstance(p, str)] if isinstance(data, list) else []


def meta_files(paths: Paths) -> list[Path]:
    """Every ``metarec_meta.json``: ``<models_dir>/<dataset>/<name>/`` and the external folders."""
    root = paths.models_dir
    found = sorted(root.glob(f"*/*/{META_FILE}")) if root.exists() else []
    found += [d / META_FILE for d in external_dirs(paths) if (d / META_FILE).is_file()]
    return found
