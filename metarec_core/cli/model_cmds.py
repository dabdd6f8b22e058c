"""CLI ``models``: every trained model the app and the command line know, in one list."""

from __future__ import annotations

import argparse
import time


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``models`` to the top-level parser."""
    p = sub.add_parser(
        "models",
        help="list trained models (the app's and the command line's)",
        description="Every trained model: name, kind, dataset (when known), folder, when it was "
        "created and the size of the catalogue it serves.",
    )
    p.add_argument("--dataset", default=None, help="only the models of this dataset")
    p.add_argument("--kind", default=None, choices=("coldstart", "categories"))
    p.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    from metarec_core.services.models import list_models

    models = list_models(None, args.dataset, args.kind)
    if not models:
        where = " matching --dataset/--kind" if args.dataset or args.kind else " yet"
        print(f"no trained models{where} (train one in the app, or with train / train-categories)")
        return 0
    rows = [
        (
            m.name,
            m.kind,
            m.dataset or "-",
            time.strftime("%Y-%m-%d %H:%M", time.localtime(m.created)),
            "-" if m.n_items is None else f"{m.n_items:,}",
            str(m.path),
        )
        for m in models
    ]
    head = ("name", "kind", "dataset", "created", "items", "path")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]
    for r in [head, *rows]:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) + "  " + r[-1])
    return 0
