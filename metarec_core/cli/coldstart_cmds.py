"""CLI commands of the cold-start engine: train, recommend, evaluate (engines imported lazily)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metarec_core.errors import MetaRecError, ValidationError


def register(subparsers) -> None:
    """Add ``train``, ``recommend`` and ``evaluate`` to the top-level parser."""
    p = subparsers.add_parser("train", help="meta-train the cold-start recommender on interactions")
    p.add_argument(
        "--interactions", required=True, help="CSV/Parquet: user_id, item_id, order column"
    )
    p.add_argument("--items", required=True, help="CSV/Parquet: item_id plus text columns")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument(
        "--init-from",
        default=None,
        metavar="MODEL",
        help="a model trained on another shop: train from its weights and from scratch, keep "
        "the better on held-back users of --interactions",
    )
    p.add_argument("--k", type=int, default=3, help="support size the model targets (default 3)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--encoder",
        default=None,
        help="text encoder of the item texts: minilm (fast, the default on a CPU) or mpnet "
        "(quality, ~7x slower to embed; the default on a GPU when installed); "
        "with --init-from, the source model's",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="meta-training epochs, exactly (default: 3, more on small data)",
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="dataset the model belongs to in the app (default: the shared dataset the files "
        "come from, else none)",
    )
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser("recommend", help="recommend for new users from their support items")
    p.add_argument("--model", required=True, help="model directory written by train")
    p.add_argument("--support", required=True, help="CSV/Parquet: user_id, item_id[, position]")
    p.add_argument(
        "--items",
        default=None,
        help="CSV/Parquet catalogue to serve instead of the model's own (e.g. another shop's): "
        "items are scored through their text; items the model knows keep what it learned",
    )
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--out", required=True, help="CSV to write: user_id, rank, item_id, score, ...")
    p.add_argument("--no-adapt", action="store_true", help="skip the inner loop (method no-adapt)")
    p.add_argument(
        "--method",
        default=None,
        help="adapted (default), no-adapt, finetune, prototype, "
        "popularity, item-knn, text-similarity, ease",
    )
    p.add_argument(
        "--steps",
        default=None,
        help="one list per step instead: e.g. 0-10 (step k adapts to each user's first k support "
        "items; 0 = no history, bestsellers); adds a 'step' column",
    )
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_recommend)

    p = subparsers.add_parser("evaluate", help="cold-start protocol: all methods side by side")
    p.add_argument("--dataset", required=True, help="store dataset, shared dataset key or folder")
    p.add_argument("--k", default="3", help="support size(s), e.g. 3 or 1,3,5,10")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated split seeds")
    p.add_argument("--methods", default=None, help="comma-separated subset of methods")
    p.add_argument("--out", default=None, help="write the report as JSON")
    p.add_argument("--epochs", type=int, default=None, help="meta-training epochs, exactly")
    p.add_argument(
        "--source",
        default=None,
        help="cross-shop: a dataset to train on (all of it) and serve --dataset's new users with",
    )
    p.add_argument(
        "--source-model", default=None, help="cross-shop: a model directory instead of --source"
    )
    p.add_argument(
        "--target-users",
        default="0,100,1000,all",
        help="cross-shop: warm target users the in-shop baselines see (default 0,100,1000,all)",
    )
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_evaluate)


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in str(text).replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise ValidationError(f"{what}: expected comma-separated integers, got '{text}'") from None
    if not values or any(v < 0 for v in values):
        raise ValidationError(f"{what}: expected non-negative integers, got '{text}'")
    return values


def parse_steps(text: str) -> list[int]:
    """'0-10' or '0,1,3' or '2-4,8' -> sorted distinct steps between 0 and MAX_STEPS."""
    from metarec_core.services.replay import MAX_STEPS

    steps: set[int] = set()
    for part in str(text).replace(" ", "").split(","):
        lo, sep, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise ValidationError(f"--steps: expected e.g. 0-10 or 0,1,3, got '{text}'") from None
        if not 0 <= a <= b <= MAX_STEPS:
            raise ValidationError(f"--steps: steps run from 0 to {MAX_STEPS}, got '{text}'")
        steps.update(range(a, b + 1))
    return sorted(steps)


def read_interactions(path: str):
    """Canonical interactions from a file (instacart-style baskets ordered within each order)."""
    from metarec_core.data.canonical import canonical_interactions, find_column
    from metarec_core.data.files import read_table

    df = read_table(path)
    order = None
    if find_column(df, ("order_number",)) and find_column(df, ("add_to_cart_order",)):
        order = [find_column(df, ("order_number",)), find_column(df, ("add_to_cart_order",))]
    return canonical_interactions(df, order_cols=order, what=str(path))


def read_items(path: str):
    from metarec_core.data.canonical import canonical_items
    from metarec_core.data.files import read_table

    return canonical_items(read_table(path), what=str(path))


def register_cli_model(out, kind: str, n_items: int, dataset, files: str, cfg) -> None:
    """List a model the command line wrote in the app's registry (``models`` shows it)."""
    from metarec_core.config import SHARED_DATASETS_DIR
    from metarec_core.services.models import register_model

    if dataset is None:  # e.g. /work/shared/datasets/ml-100k/items.csv.gz -> ml-100k
        folder = Path(files).resolve().parent
        shared = SHARED_DATASETS_DIR.resolve()
        dataset = folder.name if folder.parent == shared or shared == folder else ""
    config = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    register_model(Path(out), kind, n_items, dataset or "", config, device=config.get("device"))


def _source_and_encoder(args: argparse.Namespace):
    """(the --init-from model or None, the text encoder of a model trained from scratch)."""
    from metarec_core.embed.registry import default_encoder_name, encoder_spec, require_installed
    from metarec_core.embed.service import lazy_encoder

    if args.init_from is None:
        name = args.encoder or default_encoder_name(args.device)
        return None, lazy_encoder(require_installed(name).name)
    from metarec_core.coldstart.model import ColdStartModel

    source = ColdStartModel.load(args.init_from, device=args.device)
    if args.encoder and encoder_spec(args.encoder).model_id != source.encoder_id:
        raise ValidationError(
            f"--encoder {args.encoder} differs from the encoder of {args.init_from} "
            f"({source.encoder_id}): a model continues with its own encoder"
        )
    return source, None


def cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    from metarec_core.cli.progress_bar import CliProgress
    from metarec_core.coldstart import ColdStartConfig
    from metarec_core.coldstart.train import train_model

    if args.k < 1:
        raise ValidationError(f"--k must be >= 1, got {args.k}")
    cfg = ColdStartConfig(k=args.k, seed=args.seed, device=args.device)
    if args.epochs is not None:
        cfg = dataclasses.replace(cfg, epochs=args.epochs, min_steps=0)  # exactly as asked
    source, encoder = _source_and_encoder(args)
    interactions, items = read_interactions(args.interactions), read_items(args.items)
    if source is None:
        model = train_model(interactions, items, cfg, progress=CliProgress(), encoder=encoder)
    else:
        from metarec_core.coldstart.transfer import train_from

        model = train_from(source, interactions, items, cfg, progress=CliProgress())
    out = model.save(args.out)
    register_cli_model(out, "coldstart", len(model.catalogue), args.dataset, args.items, cfg)
    r = model.report
    curve = r["meta"]["val_ndcg10"]
    checked = f"validation NDCG@10 {max(curve):.4f}" if curve else "too few users to validate on"
    print(
        f"trained on {r['n_users']} users, {r['n_items']} items in {r['train_seconds']:.0f} s "
        f"({checked}); model written to {out}"
    )
    if "init_from" in r:
        i = r["init_from"]
        which = "from " + args.init_from if i["kept"] == "transfer" else "from scratch"
        if i["validated"]:
            why = (
                f"validation NDCG@10 {i['val_ndcg10_transfer']:.4f} from the source model, "
                f"{i['val_ndcg10_fresh']:.4f} from scratch"
            )
        else:
            why = "too few users to hold any back and compare the two"
        print(f"kept the model trained {which} ({why})")
    if r.get("skipped_interactions"):
        print(
            f"note: {r['skipped_interactions']} interaction(s) with items missing from --items were skipped",
            file=sys.stderr,
        )
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from metarec_core.coldstart import METHODS
    from metarec_core.coldstart.model import ColdStartModel
    from metarec_core.data.files import read_table

    method = args.method or ("no-adapt" if args.no_adapt else "adapted")
    if args.method and args.no_adapt and args.method != "no-adapt":
        raise ValidationError("--no-adapt conflicts with --method " + args.method)
    if method not in METHODS:
        raise ValidationError(f"unknown method '{method}': use one of {', '.join(METHODS)}")
    if args.top < 1:
        raise ValidationError(f"--top must be >= 1, got {args.top}")
    steps = parse_steps(args.steps) if args.steps is not None else None
    if Path(args.out).is_dir():
        raise ValidationError(f"--out {args.out} is a folder: name the CSV file to write")
    model = ColdStartModel.load(args.model, device=args.device)
    support = read_table(args.support)
    if args.items is not None:
        from metarec_core.cli.transfer_cmds import serve_items

        model = serve_items(model, args.items, method, support)
    if steps is not None:
        return _recommend_steps(model, support, steps, args.top, method, Path(args.out))
    recs = model.recommend(support, top=args.top, method=method)
    out = Path(args.out)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    recs.frame.to_csv(out, index=False)
    n_users = recs.frame["user_id"].nunique()
    print(
        f"{method}: {n_users} user(s), top {args.top}, {recs.elapsed_s:.2f} s -> {out}",
        file=sys.stderr,
    )
    _report_skipped(recs)
    if recs.popularity_share > 0:
        print(
            f"the shop's item counts take {recs.popularity_share:g} of the score (chosen by "
            "hiding each user's last support items in turn)",
            file=sys.stderr,
        )
    if recs.fallback_users:
        print(
            f"{len(recs.fallback_users)} user(s) had no known support item and got popularity "
            f"(fallback=True), e.g. {', '.join(recs.fallback_users[:3])}",
            file=sys.stderr,
        )
    if recs.users_without_items:
        print(
            f"{len(recs.users_without_items)} user(s) have nothing left to recommend (their "
            f"support holds every item), e.g. {', '.join(recs.users_without_items[:3])}",
            file=sys.stderr,
        )
    return 0


def _recommend_steps(model, support, steps: list[int], top: int, method: str, out: Path) -> int:
    """``recommend --steps``: one list per user and step, written as one CSV with a step column."""
    recs = model.recommend_steps(support, steps, top=top, method=method)
    out.parent.mkdir(parents=True, exist_ok=True)
    recs.frame.to_csv(out, index=False)
    users = recs.frame["user_id"].nunique()
    print(
        f"{method}: {users} user(s), steps {steps[0]}-{steps[-1]}, top {top}, "
        f"{recs.elapsed_s:.2f} s -> {out}",
        file=sys.stderr,
    )
    short = int((recs.frame.groupby("user_id")["step"].max() < steps[-1]).sum())
    if short:
        print(
            f"{short} user(s) have fewer support items than step {steps[-1]}: "
            "their lists stop at their last item",
            file=sys.stderr,
        )
    _report_skipped(recs)
    return 0


def _report_skipped(recs) -> None:
    if recs.skipped_items:
        print(
            f"skipped {recs.skipped_items} support row(s) whose item is not in the served "
            f"catalogue ({len(recs.skipped_by_user)} user(s))",
            file=sys.stderr,
        )


def load_dataset(name: str, db: str | None = None):
    """(interactions, items) through the data layer's load_frames, else shared datasets/folders."""
    try:
        from metarec_core.data.sources import load_frames
    except ImportError:
        load_frames = None
    if load_frames is not None:
        store = None
        if db is not None:
            from metarec_core.data.store import Store

            store = Store(db)
        return load_frames(name, store)
    from metarec_core.config import SHARED_DATASETS_DIR

    folder = Path(name) if Path(name).is_dir() else SHARED_DATASETS_DIR / name
    if not folder.is_dir():
        raise MetaRecError(f"unknown dataset '{name}': not a shared dataset key or a folder")
    files = {p.name.split(".")[0]: p for p in sorted(folder.iterdir()) if p.is_file()}
    if "interactions" not in files or "items" not in files:
        raise MetaRecError(f"{folder}: needs interactions.* and items.* files")
    return read_interactions(str(files["interactions"])), read_items(str(files["items"]))


def cmd_evaluate(args: argparse.Namespace) -> int:
    import dataclasses

    from metarec_core.cli.progress_bar import CliProgress
    from metarec_core.coldstart import ColdStartConfig
    from metarec_core.evaluate.coldstart_eval import evaluate_dataset

    ks = _int_list(args.k, "--k")
    if any(k < 1 for k in ks):
        raise ValidationError("--k values must be >= 1")
    seeds = _int_list(args.seeds, "--seeds")
    if args.source is not None or args.source_model is not None:
        from metarec_core.cli.transfer_cmds import cmd_evaluate_transfer

        return cmd_evaluate_transfer(args, ks, seeds)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    interactions, items = load_dataset(args.dataset, getattr(args, "db", None))
    cfg = dataclasses.replace(ColdStartConfig(device=args.device), k=ks[0])
    if args.epochs is not None:
        cfg = dataclasses.replace(cfg, epochs=args.epochs, min_steps=0)
    report = evaluate_dataset(
        interactions, items, ks=ks, seeds=seeds, methods=methods, config=cfg, progress=CliProgress()
    )
    report.info["dataset"] = args.dataset
    spread = "mean ± 95% interval over seeds" if len(seeds) > 1 else "one seed: no interval; seed"
    print(f"{args.dataset}: NDCG@10 ({spread} {','.join(map(str, seeds))})")
    print(report.table("ndcg@10").to_string())
    paired = report.paired_table()
    if not paired.empty:
        print("adapted minus each method, user by user (NDCG@10, 95% interval):")
        print(paired.to_string())
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report.to_json())
        print(f"report written to {out}")
    return 0
