"""Cross-shop CLI pieces: ``recommend --items`` and ``evaluate --source/--source-model``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metarec_core.cli.coldstart_cmds import load_dataset, read_items
from metarec_core.errors import ValidationError


def serve_items(model, path: str, method: str, support):
    """The model serving the catalogue in ``path`` to the users of ``support``
    (``recommend --items``; coldstart/transfer.py ``serve_new_shop``)."""
    from metarec_core.cli.progress_bar import CliProgress
    from metarec_core.coldstart.transfer import NEEDS_INTERACTIONS, serve_new_shop

    served = serve_new_shop(model, read_items(path), support, progress=CliProgress())
    info = served.report.get("served_catalogue")
    if served is model or info is None:
        return model
    if info["known_items"] == 0 and method in NEEDS_INTERACTIONS:
        raise ValidationError(
            f"method {method} needs interactions in this catalogue, and the model knows none of "
            f"its items: use adapted, no-adapt, finetune, prototype or text-similarity"
        )
    print(
        f"serving {info['n_items']} items of {path} ({info['known_items']} known to the model, "
        "the rest by their text)",
        file=sys.stderr,
    )
    if info["items_without_text"]:
        print(
            f"skipped {info['items_without_text']} item(s) of {path} with no text",
            file=sys.stderr,
        )
    return served


def parse_target_users(text: str) -> list[int]:
    """'0,100,1000,all' -> [0, 100, 1000, -1] (-1: every warm user of the target)."""
    out = []
    for part in str(text).replace(" ", "").split(","):
        if part == "all":
            out.append(-1)
            continue
        try:
            value = int(part)
        except ValueError:
            raise ValidationError(
                f"--target-users: expected e.g. 0,100,1000,all, got '{text}'"
            ) from None
        if value < 0:
            raise ValidationError(f"--target-users: counts must be >= 0, got '{text}'")
        out.append(value)
    return out


def cmd_evaluate_transfer(args: argparse.Namespace, ks: list[int], seeds: list[int]) -> int:
    """``evaluate --dataset TARGET --source SOURCE|--source-model DIR``: the cross-shop protocol."""
    import json

    from metarec_core.cli.progress_bar import CliProgress
    from metarec_core.coldstart import ColdStartConfig
    from metarec_core.coldstart.model import ColdStartModel
    from metarec_core.coldstart.train import train_model
    from metarec_core.evaluate.transfer_eval import evaluate_transfer

    if args.source is not None and args.source_model is not None:
        raise ValidationError("give --source or --source-model, not both")
    counts = parse_target_users(args.target_users)
    db = getattr(args, "db", None)
    target = load_dataset(args.dataset, db)
    if args.source_model is not None:
        model, source = (
            ColdStartModel.load(args.source_model, device=args.device),
            args.source_model,
        )
    else:
        source = args.source
        cfg = ColdStartConfig(device=args.device, k=min(ks[0], 10))
        model = train_model(*load_dataset(args.source, db), cfg, progress=CliProgress())
    reports = []
    for seed in seeds:
        for k in ks:
            report = evaluate_transfer(
                model, *target, k=k, seed=seed, target_users=counts, progress=CliProgress()
            )
            reports.append(report.to_dict())
            print(
                f"{source} -> {args.dataset}, k={k}, seed {seed}: NDCG@10 by warm target users seen"
            )
            print(report.table("ndcg@10").round(4).to_string())
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps(
                {"source": source, "target": args.dataset, "runs": reports}, indent=2, default=str
            )
        )
        print(f"report written to {out}")
    return 0
