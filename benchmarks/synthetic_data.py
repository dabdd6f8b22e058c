"""Command line for the synthetic log generator (benchmarks.synthetic).

    python -m benchmarks.synthetic_data --rows 10000000 --out /data/syn10m [--partition-by-month]
        [--users N] [--items N] [--categories N] [--item-alpha 1.0] [--user-alpha 0.8] [--seed 0]

Writes items.parquet and interactions.parquet (or interactions/month=YYYY-MM/*.parquet), then
prints what it wrote as JSON. Import the result with
``python -m metarec_core import --interactions OUT/interactions --items OUT/items.parquet ...``
or read it in place (benchmarks/parquet_direct.py).
"""

from __future__ import annotations

import argparse
import json
import sys

from benchmarks.synthetic import SyntheticConfig, write_synthetic


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.synthetic_data", description=__doc__.split("\n")[0]
    )
    p.add_argument("--rows", type=float, required=True, help="interaction rows (1e7 is fine)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--users", type=int, default=0, help="user id space (default rows / 50)")
    p.add_argument("--items", type=int, default=0, help="catalogue size (default rows / 200)")
    p.add_argument("--categories", type=int, default=200)
    p.add_argument("--item-alpha", type=float, default=1.0, help="Zipf exponent of popularity")
    p.add_argument("--user-alpha", type=float, default=0.8, help="Zipf exponent of activity")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--partition-by-month", action="store_true", help="hive-partitioned folder")
    a = p.parse_args(argv)
    cfg = SyntheticConfig(
        n_rows=int(a.rows),
        n_users=a.users,
        n_items=a.items,
        n_categories=a.categories,
        item_alpha=a.item_alpha,
        user_alpha=a.user_alpha,
        seed=a.seed,
    )
    files = write_synthetic(a.out, cfg, partition_by_month=a.partition_by_month)
    print(json.dumps({k: str(v) for k, v in files.__dict__.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
