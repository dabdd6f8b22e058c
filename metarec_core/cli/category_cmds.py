"""CLI for new categories: ``train-categories`` (meta-train a model) and ``classify`` (few-shot)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ENCODER_HELP = (
    "text encoder: minilm (fast, ~650 titles/s on 2 CPU cores) or mpnet (quality: +3 to +5 "
    "accuracy points on unseen categories, ~95 titles/s; make encoder-mpnet). Default: mpnet "
    "on a GPU when installed, else minilm. The model folder records it."
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train-categories`` and ``classify`` to the top-level parser."""
    t = sub.add_parser(
        "train-categories",
        help="meta-train a few-shot category model on a labelled catalogue",
        description="Meta-train the projection of the few-shot category classifier on the "
        "categories of a labelled catalogue (CSV/Parquet, or a shared dataset name such as "
        "instacart). Without --out the model is written to the default location that classify "
        "uses when it is given no --model.",
    )
    t.add_argument("--items", required=True, help="items file (CSV/Parquet) or shared dataset name")
    t.add_argument(
        "--category-column", default="category", help="category column (default category)"
    )
    t.add_argument("--text-column", default=None, help="text column (default: text, title or name)")
    t.add_argument("--out", default=None, help="model folder (default: the default model location)")
    t.add_argument("--default", action="store_true", help="write to the default model location")
    t.add_argument("--episodes", type=int, default=None, help="meta-training episodes")
    t.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    t.add_argument("--encoder", default=None, help=ENCODER_HELP)
    t.add_argument(
        "--dataset",
        default=None,
        help="dataset the model belongs to in the app (default: the shared dataset, else none)",
    )
    t.set_defaults(func=train_categories)

    c = sub.add_parser(
        "classify",
        help="few-shot classify products into new categories from a few labelled examples",
        description="SUPPORT: item_id, title, category (a few labelled products per category). "
        "QUERY: item_id, title. Writes PREDS (CSV): item_id, category, confidence; with "
        "--open-set the category is empty for 'none of these'.",
    )
    c.add_argument("--support", required=True, help="labelled examples: item_id, title, category")
    c.add_argument("--query", required=True, help="products to classify: item_id, title")
    c.add_argument("--out", required=True, help="predictions CSV to write")
    c.add_argument("--model", default=None, help="trained model folder (default: default model)")
    c.add_argument("--open-set", action="store_true", help="allow 'none of these' (empty category)")
    c.add_argument(
        "--encoder",
        default=None,
        help="text encoder when no trained model is used (minilm, mpnet or multilingual; "
        "default as for train-categories); a trained model always classifies with its own",
    )
    c.set_defaults(func=classify_cmd)


def _items_path(spec: str) -> Path:
    from metarec_core.config import SHARED_DATASETS_DIR

    p = Path(spec)
    if p.exists() or any(ch in spec for ch in "/\\."):
        return p
    shared = SHARED_DATASETS_DIR / spec / "items.csv.gz"
    return shared if shared.exists() else p


def train_categories(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from metarec_core.categories import CategoryConfig, default_model_dir, train_category_model
    from metarec_core.cli.coldstart_cmds import register_cli_model
    from metarec_core.cli.progress_bar import CliProgress
    from metarec_core.data.files import read_table
    from metarec_core.embed.service import lazy_encoder
    from metarec_core.errors import ValidationError

    if args.out and args.default and Path(args.out).resolve() != default_model_dir().resolve():
        raise ValidationError("give either --out or --default, not both")
    out = Path(args.out) if args.out else default_model_dir()
    items = read_table(_items_path(args.items))
    if args.category_column not in items.columns:
        raise ValidationError(
            f"items: no column '{args.category_column}'; found {', '.join(map(str, items.columns))}"
        )
    if args.text_column is not None and args.text_column not in items.columns:
        raise ValidationError(
            f"items: no column '{args.text_column}'; found {', '.join(map(str, items.columns))}"
        )
    from metarec_core.embed.registry import default_encoder_name, require_installed

    encoder = require_installed(args.encoder or default_encoder_name(args.device)).name
    overrides = {"seed": args.seed, "device": args.device, "encoder": encoder}
    if args.episodes is not None:
        overrides["episodes"] = args.episodes
    config = CategoryConfig(**overrides)
    model = train_category_model(
        items,
        config,
        CliProgress(),
        lazy_encoder(encoder),
        category_column=args.category_column,
        text_column=args.text_column,
    )
    model.save(out)
    config_dict = {**asdict(config), "category_column": args.category_column}
    register_cli_model(
        out, "categories", len(items), args.dataset, str(_items_path(args.items)), config_dict
    )
    rep = model.report
    val = rep.get("validation", {})
    check = ""
    if "allway_5shot" in val:
        a, f = val["allway_5shot"], val.get("5way_5shot", {})
        check = (
            f"; on held-back categories (all-way / 5-way 5-shot) the learned projection scored "
            f"{a['trained']:.3f} / {f.get('trained', float('nan')):.3f} against "
            f"{a['untrained']:.3f} / {f.get('untrained', float('nan')):.3f} in the encoder space, "
            f"so it was {'kept' if val.get('projection_kept') else 'dropped'}"
        )
    elif "note" in rep.get("history", {}):
        check = f"; the {rep['history']['note']}"
    print(
        f"trained with the {encoder} encoder on {rep['n_items']} items in "
        f"{rep['n_categories']} categories in "
        f"{rep['seconds']['total']:.0f}s{check}; model written to {out}",
        file=sys.stderr,
    )
    return 0


def classify_cmd(args: argparse.Namespace) -> int:
    from metarec_core.categories import (
        CategoryConfig,
        CategoryModel,
        classify,
        default_model_dir,
        load_default_model,
        model_encoder,
    )
    from metarec_core.cli.progress_bar import CliProgress
    from metarec_core.data.files import read_table
    from metarec_core.embed.service import lazy_encoder

    support = read_table(args.support)
    query = read_table(args.query)
    model = CategoryModel.load(args.model) if args.model else load_default_model()
    if model is None:  # no trained default on this machine: the encoder space, said plainly
        from metarec_core.embed.registry import default_encoder_name

        encoder = args.encoder or default_encoder_name()
        model = CategoryModel.untrained(CategoryConfig(encoder=encoder))
    name = model_encoder(model, args.encoder)
    result = classify(
        support,
        query,
        model,
        open_set=args.open_set,
        encoder=lazy_encoder(name),
        progress=CliProgress(),
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    preds = result.predictions.copy()
    preds["confidence"] = preds["confidence"].round(4)
    preds.to_csv(out, index=False)
    loo = "n/a" if result.leave_one_out is None else f"{result.leave_one_out:.3f}"
    none = int(preds["category"].isna().sum())
    hint = (
        f" (no default model at {default_model_dir()}; train-categories --default makes one)"
        if args.model is None and model.report.get("kind") == "untrained"
        else ""
    )
    lines = [
        f"model: {result.model_used}{hint}; encoder {name}",
        f"{len(preds)} products classified into {len(result.categories)} "
        f"{'category' if len(result.categories) == 1 else 'categories'} "
        f"(support leave-one-out accuracy {loo}; category names used: "
        f"{'yes' if result.used_names else 'no'})",
    ]
    if args.open_set:
        lines.append(f"open set: threshold {result.threshold:.3f}, {none} answered 'none of these'")
    skipped = result.skipped_empty
    if skipped.get("support") or skipped.get("query"):
        lines.append(
            f"skipped rows with empty titles: {skipped['support']} support, {skipped['query']} query"
        )
    if result.script_warning:
        lines.append(f"warning: {result.script_warning}")
    lines.append(f"predictions written to {out}")
    print("\n".join(lines), file=sys.stderr)
    return 0
