"""The three shared dataset folders (amazon-beauty, instacart, ml-100k) and how to read them.

Each layout names its files, the column mapping and small SQL transforms that derive the
encoder text, display title and category (see ../shared/datasets/README.md for the columns).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from metarec_core.config import SHARED_DATASETS_DIR
from metarec_core.data.pipeline import Built, ColumnMapping, build_dataset
from metarec_core.data.staging import Source
from metarec_core.errors import NotFoundError


@dataclass(frozen=True)
class Layout:
    """How one known folder maps onto the canonical tables."""

    key: str
    mapping: ColumnMapping
    transforms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    has_users: bool = False


# Amazon has no product names: brand + category path describe an item.
_AMAZON_ITEMS = """
SELECT * REPLACE (nullif(trim(brand), '') AS brand),
  concat_ws(' · ', nullif(trim(brand), ''), nullif(leaf_category, ''), asin) AS title,
  concat_ws('. ', 'Brand: ' || nullif(trim(brand), ''),
            replace(nullif(categories, ''), '|', '; ')) AS text
FROM src
"""

_ML_ITEMS = """
SELECT item_id,
  title || coalesce(' (' || CAST(release_year AS VARCHAR) || ')', '') AS title,
  title || coalesce(' (' || CAST(release_year AS VARCHAR) || ')', '') AS text,
  nullif(split_part(genres, '|', 1), '') AS category,
  release_year, genres
FROM src
"""

LAYOUTS: dict[str, Layout] = {
    "amazon-beauty": Layout(
        "amazon-beauty",
        ColumnMapping(
            user_col="user_id",
            item_col="item_id",
            order_cols=("position",),
            text_col="text",
            title_col="title",
            category_col="leaf_category",
        ),
        {"items": (_AMAZON_ITEMS,)},
    ),
    "instacart": Layout(
        "instacart",
        ColumnMapping(
            user_col="user_id",
            item_col="item_id",
            order_cols=("order_number", "add_to_cart_order"),
            text_col="name",
            title_col="name",
            category_col="aisle",
        ),
    ),
    "ml-100k": Layout(
        "ml-100k",
        ColumnMapping(
            user_col="user_id",
            item_col="item_id",
            order_cols=("timestamp",),
            text_col="text",
            title_col="title",
            category_col="category",
            value_col="rating",
        ),
        {"items": (_ML_ITEMS,)},
        has_users=True,
    ),
}


def get_layout(key: str) -> Layout:
    """The layout for a known dataset key (NotFoundError listing the known keys)."""
    if key not in LAYOUTS:
        raise NotFoundError(f"unknown layout '{key}' (known: {', '.join(LAYOUTS)})")
    return LAYOUTS[key]


def layout_folder(key: str, path: str | Path | None = None) -> Path:
    """The folder of a known layout: ``path`` or SHARED_DATASETS_DIR/<key>; must exist."""
    folder = Path(path) if path is not None else SHARED_DATASETS_DIR / key
    if not folder.is_dir():
        raise NotFoundError(f"dataset folder not found: {folder}")
    return folder


def _file(folder: Path, stem: str, required: bool = True) -> Path | None:
    for ext in (".csv.gz", ".csv", ".parquet"):
        if (folder / f"{stem}{ext}").exists():
            return folder / f"{stem}{ext}"
    if required:
        raise NotFoundError(f"{folder}: no {stem}.csv.gz / .csv / .parquet file")
    return None


def build_layout(
    key: str,
    path: str | Path | None = None,
    sources: dict[str, Source] | None = None,
    extra_transforms: dict[str, tuple[str, ...]] | None = None,
) -> Built:
    """Validate and canonicalise a known layout from its folder (or from given sources)."""
    layout = get_layout(key)
    if sources is None:
        folder = layout_folder(key, path)
        sources = {
            "interactions": _file(folder, "interactions"),
            "items": _file(folder, "items"),
            "users": _file(folder, "users", required=False) if layout.has_users else None,
        }
    transforms = {
        t: (*(extra_transforms or {}).get(t, ()), *layout.transforms.get(t, ()))
        for t in ("interactions", "items", "users")
    }
    return build_dataset(
        sources["interactions"],
        sources["items"],
        sources.get("users"),
        mapping=layout.mapping,
        transforms=transforms,
    )
