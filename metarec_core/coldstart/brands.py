"""A new shop's brands beside its words: shoppers come back to the brands they chose first.

Word overlap reads a brand as one word among the category words of an item's text, so items of
the support's brands barely rise above the rest of their category. Where the catalogue names
each item's brand (a ``brand`` or ``manufacturer`` column), the number of a user's support items
of the item's brand joins a new shop's score with a small share (benchmarks/README.md, "Another
shop"). Items without a brand match nothing; a catalogue without the column is served as before.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from metarec_core.data.canonical import find_column

BRAND_COLUMNS = ("brand", "brand_name", "manufacturer")
BRAND_SHARE = 0.1  # the brand matches' share of a new shop's score


def brand_codes(items: pd.DataFrame, item_ids: np.ndarray) -> np.ndarray | None:
    """(N,) brand code of each of ``item_ids`` (rows of ``items``; -1: no brand), or None when
    ``items`` has no brand column or no two of these items share a brand. Brands compare
    without case and surrounding spaces."""
    col = find_column(items, BRAND_COLUMNS)
    if col is None:
        return None
    names = items[col].astype(object).where(items[col].notna(), "").astype(str)
    names = names.str.strip().str.casefold()
    by_id = pd.Series(names.to_numpy(), index=items["item_id"].astype(str).to_numpy())
    by_id = by_id[~by_id.index.duplicated()]
    names = by_id.reindex(np.asarray(item_ids, dtype=str))
    codes = pd.factorize(names.where(names.notna() & names.ne(""), None))[0].astype(np.int64)
    named = codes[codes >= 0]
    if len(named) == 0 or np.bincount(named).max() < 2:
        return None
    return codes


def brand_matches(codes: torch.Tensor, support: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, N) for each user and item: how many of the user's valid support items (``support``,
    ``mask`` (B, K)) share the item's brand (``codes`` (N,), -1: none, which matches nothing)."""
    b, width = support.shape[0], int(codes.max()) + 2  # column 0: no brand
    per_brand = torch.zeros(b, width, device=support.device)
    per_brand.scatter_add_(1, codes[support] + 1, mask.float())
    per_brand[:, 0] = 0.0
    return per_brand[:, codes + 1]
