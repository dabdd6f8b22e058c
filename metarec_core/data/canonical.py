"""Canonical in-memory frames that every engine consumes, built from arbitrary user columns.

interactions: user_id (str), item_id (str), position (int64, 0-based order within the user),
              ts (float64: the primary order value, timestamps as epoch seconds), optional
              event (str) and value (float).
items:        item_id (str), title (str, for display), text (str, encoder input),
              category (str or missing), plus any extra attribute columns kept as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from metarec_core.errors import ValidationError

USER_ALIASES = ("user_id", "userid", "user", "customer_id", "visitor_id", "reviewer_id", "uid")
ITEM_ALIASES = ("item_id", "itemid", "item", "product_id", "movie_id", "asin", "sku", "iid")
ORDER_ALIASES = (
    "position",
    "timestamp",
    "ts",
    "time",
    "datetime",
    "date",
    "event_time",
    "order_number",
    "day",
    "seq",
    "order",
)
TITLE_ALIASES = ("title", "name", "product_name", "item_name")
CATEGORY_ALIASES = ("category", "leaf_category", "aisle", "genre", "categories", "genres")
VALUE_ALIASES = ("rating", "value", "score", "quantity")
EVENT_ALIASES = ("event", "event_type", "action")


def find_column(df: pd.DataFrame, aliases: Sequence[str]) -> str | None:
    """The first column of ``df`` matching an alias (case-insensitive), or None."""
    lower = {str(c).lower(): c for c in df.columns}
    for a in aliases:
        if a in lower:
            return lower[a]
    return None


def _pick(
    df: pd.DataFrame,
    explicit: str | None,
    aliases: Sequence[str],
    role: str,
    what: str,
    required: bool = True,
) -> str | None:
    if explicit is not None:
        if explicit not in df.columns:
            raise ValidationError(
                f"{what}: no column '{explicit}' for {role}; found "
                f"{', '.join(map(str, df.columns))}"
            )
        return explicit
    col = find_column(df, aliases)
    if col is None and required:
        raise ValidationError(
            f"{what}: missing column {role} (looked for {', '.join(aliases[:4])}); "
            f"found {', '.join(map(str, df.columns))}"
        )
    return col


def _id_strings(s: pd.Series, role: str, what: str) -> pd.Series:
    bad = s.isna()
    if s.dtype == object or pd.api.types.is_string_dtype(s):
        bad |= s.astype(str).str.strip().eq("")
    if bad.any():
        raise ValidationError(f"{what}: {int(bad.sum())} row(s) have an empty {role}")
    if pd.api.types.is_float_dtype(s) and np.all(np.mod(s.to_numpy(), 1) == 0):
        s = s.astype(np.int64)
    return s.astype(str).str.strip().astype(object)


def order_values(s: pd.Series, col: str, what: str) -> pd.Series:
    """Column ``col`` of an order (numbers, or dates parsed as such) as float seconds or numbers;
    ValidationError when a value is neither."""
    if pd.api.types.is_numeric_dtype(s):
        out = s.astype(np.float64)
    elif pd.api.types.is_datetime64_any_dtype(s):
        out = s.astype("int64").astype(np.float64) / 1e9
    else:
        num = pd.to_numeric(s, errors="coerce")
        if num.notna().all():
            out = num.astype(np.float64)
        else:
            dt = pd.to_datetime(s, errors="coerce", utc=True)  # one format, from the first value
            if dt.isna().any():  # dates written in more than one way: each value on its own
                dt = pd.to_datetime(s, errors="coerce", utc=True, format="mixed")
            if dt.isna().any():
                n = int(dt.isna().sum())
                raise ValidationError(
                    f"{what}: column '{col}' has {n} value(s) that are neither numbers nor dates"
                )
            out = (dt - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return out


def canonical_interactions(
    df: pd.DataFrame,
    user_col: str | None = None,
    item_col: str | None = None,
    order_cols: Sequence[str] | None = None,
    what: str = "interactions",
) -> pd.DataFrame:
    """Validate and normalise an interaction log (see module docstring for the output columns).

    ``order_cols`` sorts within each user (several columns break ties in turn); when absent the
    first alias found (position, timestamp, ...) is used, and failing that the row order of the file.
    """
    if df.empty:
        raise ValidationError(f"{what}: no rows")
    u = _pick(df, user_col, USER_ALIASES, "user_id", what)
    i = _pick(df, item_col, ITEM_ALIASES, "item_id", what)
    if order_cols:
        for c in order_cols:
            _pick(df, c, (), "order", what)
        orders = list(order_cols)
    else:
        found = find_column(df, ORDER_ALIASES)
        orders = [found] if found is not None else []
    out = pd.DataFrame(
        {
            "user_id": _id_strings(df[u], "user_id", what),
            "item_id": _id_strings(df[i], "item_id", what),
        }
    )
    keys = []
    for n, c in enumerate(orders):
        vals = order_values(df[c], c, what)
        if vals.isna().any():
            raise ValidationError(
                f"{what}: column '{c}' has {int(vals.isna().sum())} missing value(s)"
            )
        out[f"_o{n}"] = vals.to_numpy()
        keys.append(f"_o{n}")
    out["_row"] = np.arange(len(out))
    out["ts"] = out[keys[0]] if keys else out["_row"].astype(np.float64)
    for role, aliases in (("value", VALUE_ALIASES), ("event", EVENT_ALIASES)):
        c = find_column(df, aliases)
        if c is not None and c not in (u, i, *orders):
            out[role] = (
                pd.to_numeric(df[c], errors="coerce").to_numpy()
                if role == "value"
                else df[c].astype(str).to_numpy()
            )
    out = out.sort_values(["user_id", *keys, "_row"], kind="stable")
    out["position"] = out.groupby("user_id", sort=False).cumcount().astype(np.int64)
    out = out.drop(columns=[*keys, "_row"]).reset_index(drop=True)
    cols = ["user_id", "item_id", "position", "ts"] + [c for c in ("event", "value") if c in out]
    return out[cols]


def _is_descriptive(s: pd.Series) -> bool:
    """A text column worth showing the encoder: not numbers, not id-like codes (unique, no spaces)."""
    if not (s.dtype == object or pd.api.types.is_string_dtype(s)):
        return False
    name = str(s.name).lower()
    if name.endswith(("_id", "id", "asin", "sku", "url", "ean", "upc")):
        return False
    v = s.dropna().astype(str)
    return not (len(v) > 1 and v.is_unique and not v.str.contains(" ").any())


def canonical_items(
    df: pd.DataFrame,
    id_col: str | None = None,
    text_col: str | None = None,
    category_col: str | None = None,
    what: str = "items",
) -> pd.DataFrame:
    """Validate and normalise a catalogue: unique ids, a display title, an encoder text, a category.

    The encoder text is ``text_col`` when given, else title/name, else the other descriptive
    (string) columns joined as "column: value; ...".
    """
    if df.empty:
        raise ValidationError(f"{what}: no rows")
    i = _pick(df, id_col, ITEM_ALIASES, "item_id", what)
    ids = _id_strings(df[i], "item_id", what)
    dup = ids.duplicated(keep=False)
    if dup.any():
        examples = ", ".join(ids[dup].drop_duplicates().head(3))
        raise ValidationError(
            f"{what}: {int(ids[dup].nunique())} duplicate item id(s), e.g. {examples}"
        )
    cat = _pick(df, category_col, CATEGORY_ALIASES, "category", what, required=False)
    title_col = find_column(df, TITLE_ALIASES)
    if text_col is not None:
        _pick(df, text_col, (), "text", what)
        text = df[text_col].fillna("").astype(str)
    elif title_col is not None:
        text = df[title_col].fillna("").astype(str)
    else:
        parts = [c for c in df.columns if c != i and _is_descriptive(df[c])]
        if not parts:
            raise ValidationError(
                f"{what}: no text column (title, name or descriptive columns); "
                f"found {', '.join(map(str, df.columns))}"
            )
        text = pd.Series([""] * len(df), index=df.index)
        for c in parts:
            v = df[c].fillna("").astype(str)
            text = text.where(v.eq(""), text + np.where(text.eq(""), "", "; ") + f"{c}: " + v)
    out = pd.DataFrame({"item_id": ids, "text": text.str.strip().to_numpy()})
    out["title"] = (
        df[title_col].fillna("").astype(str).to_numpy()
        if title_col is not None
        else out["text"].to_numpy()
    )
    if cat is not None:
        c = df[cat].astype(object).where(df[cat].notna(), None)
        if cat.lower() in ("categories", "genres"):  # multi-valued: first value of the first path
            c = c.map(
                lambda v: None
                if v is None
                else str(v).split("|")[0].split(" > ")[-1].strip() or None
            )
        out["category"] = c.map(
            lambda v: None if v is None or str(v).strip() == "" else str(v)
        ).to_numpy()
    else:
        out["category"] = None
    extras = [c for c in df.columns if c not in (i, text_col, cat) and c not in out.columns]
    for c in extras:
        out[c] = df[c].to_numpy()
    return out.reset_index(drop=True)
