"""Rebuild data/demo/ from ../shared/datasets: ``python data/demo/derive.py [SHARED_DATASETS_DIR]``.

beauty-shop  = amazon-beauty as it is (every shopper, product and interaction).
grocery-shop = the Instacart order sample, with the products it contains plus, for every aisle
               with fewer than MIN_PER_AISLE of them, other products of that aisle drawn at random
               (seed 0), so that each aisle has enough products to act as a new category.
Files keep the shared folders' columns (the known layouts read them) and are written as
deterministic gzip (mtime 0), so rerunning gives the same bytes.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
MIN_PER_AISLE = 40
SEED = 0


def write_csv_gz(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = df.to_csv(index=False).encode("utf-8")
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(data)


def grocery_items(items: pd.DataFrame, bought: set) -> pd.DataFrame:
    keep = items["item_id"].isin(bought)
    extra = []
    for _, group in items[~keep].groupby("aisle", sort=True):
        have = int((items.loc[keep, "aisle"] == group["aisle"].iloc[0]).sum())
        need = min(MIN_PER_AISLE - have, len(group))
        if need > 0:
            extra.append(group.sample(n=need, random_state=SEED))
    out = pd.concat([items[keep], *extra]).sort_values("item_id")
    return out.reset_index(drop=True)


def main(shared: Path) -> None:
    beauty = shared / "amazon-beauty"
    for name in ("interactions", "items"):
        df = pd.read_csv(beauty / f"{name}.csv.gz", dtype=str, keep_default_na=False)
        write_csv_gz(df, HERE / "beauty-shop" / f"{name}.csv.gz")
    insta = shared / "instacart"
    inter = pd.read_csv(insta / "interactions.csv.gz", dtype=str, keep_default_na=False)
    items = pd.read_csv(insta / "items.csv.gz", dtype=str, keep_default_na=False)
    write_csv_gz(inter, HERE / "grocery-shop" / "interactions.csv.gz")
    write_csv_gz(
        grocery_items(items, set(inter["item_id"])), HERE / "grocery-shop" / "items.csv.gz"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / "shared" / "datasets")
