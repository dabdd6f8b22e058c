"""New-category quality: the category engine's evaluation on held-out Instacart departments.

Calls ``metarec_core.categories.evaluate_categories`` (meta-train on the other departments'
aisles, then 5-way 1/5-shot episodes, all-way and open-set on the held-out ones, with the
TF-IDF / plain-prototype / kNN / logistic-regression baselines in the same run). The 15
departments are split into folds of 5 (a fixed shuffle); each fold is one sample of every figure,
so the median/min/max are over folds. Full: 3 folds, 200 episodes; quick: 1 fold, 50 episodes;
tiny: a fake encoder on a few hundred items, seconds.

Figures: cat_5way_acc_k1, cat_5way_acc_k5, cat_allway_acc_k5, cat_allway_f1_k5,
cat_openset_precision_k5, cat_openset_recall_k5, cat_one_category_f1_k5 (the engine), and the same with a
``_<baseline>`` suffix for each baseline found in the report.

Step ``matched`` estimates the engine at the issue's reference difficulty (where plain prototypes
score 0.86 at 5-way 5-shot and 0.63 all-way): cat_matched_5way_acc_k5, cat_matched_5way_acc_k1,
cat_matched_allway_acc_k5, read off a fit over random sets of held-out departments (full: 200
sets, quick: 40), and cat_matched_5way_all_queries_acc_k5, 5-way 5-shot with every other product
of the five categories as queries on (up to 12 of) the sets at the reference.

Step ``encoders`` compares the installed encoders paired on the same tasks: 6 random sets of 6
held-out departments (catch-all departments left out), plain prototypes and the engine,
cat_enc_<encoder>_{5way_acc_k5, 5way_acc_k1, allway_acc_k5, allway_acc_k1}; quick mode keeps
at most 40 products per aisle (mpnet embeds ~95 titles/s on 2 cores; the cache keeps them).

Step ``multilingual``: 120 hand-written Chinese product titles in 12 aisles
(benchmarks/data/zh_products.csv) and their English translations, every installed encoder:
cat_zh_allway_acc_k5_<encoder>, cat_en_allway_acc_k5_<encoder> (engine, 20 support draws).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import Skip, Step, StepContext, bench_main, require
from metarec_core.config import SHARED_DATASETS_DIR

ENGINE = "metarec"
HEADLINE = {
    ("5-way 1-shot", "accuracy"): "cat_5way_acc_k1",
    ("5-way 5-shot", "accuracy"): "cat_5way_acc_k5",
    ("all-way 5-shot", "accuracy"): "cat_allway_acc_k5",
    ("all-way 5-shot", "macro_f1"): "cat_allway_f1_k5",
    ("open-set 5-shot", "precision"): "cat_openset_precision_k5",
    ("open-set 5-shot", "recall"): "cat_openset_recall_k5",
    ("one category 5-shot", "f1"): "cat_one_category_f1_k5",
}


def folds(departments: list[str], size: int = 5, seed: int = 0) -> list[list[str]]:
    """The departments shuffled once (seeded) and cut into folds of ``size``."""
    perm = list(np.random.default_rng(seed).permutation(sorted(departments)))
    return [perm[i : i + size] for i in range(0, len(perm) - size + 1, size)]


def step_evaluate(ctx: StepContext) -> None:
    evaluate_categories, config_cls = require(
        "metarec_core.categories", "evaluate_categories", "CategoryConfig"
    )
    items = _instacart_items()
    kwargs: dict = {}
    if ctx.tiny:
        from metarec_core.embed.encoder import FakeEncoder

        keep = items.groupby("aisle").head(8)
        items = keep[keep.department.isin(keep.department.unique()[:6])]
        kwargs = dict(encoder=FakeEncoder(dim=64), config=config_cls(encoder="fake", episodes=20,
                      device=ctx.device), n_episodes=10, allway_repeats=1)  # fmt: skip
        chosen = [sorted(items.department.unique())[:3]]
    else:
        # quality, not speed: embeddings come from the app's persistent cache (Paths().cache_dir),
        # like the cold-start evaluation's; the encoder's speed is measured by bench_speed
        kwargs = dict(config=config_cls(device=ctx.device), n_episodes=ctx.pick(0, 50, 200),
                      allway_repeats=ctx.pick(1, 1, 3))  # fmt: skip
        chosen = folds(list(items.department.unique()))[: ctx.pick(1, 1, 3)]
    tables = []
    for n, held_out in enumerate(chosen):
        report = evaluate_categories(
            items, category_column="aisle", held_out=held_out, group_column="department",
            text_column="name", shots=(1, 5), **kwargs,
        )  # fmt: skip
        t = report.table.assign(fold=n)
        tables.append(t)
        for row in t.itertuples():
            key = HEADLINE.get((row.setting, row.metric))
            if key:
                ctx.add(key if row.method == ENGINE else f"{key}_{row.method}", row.mean)
        ctx.info.setdefault("folds", []).append({
            "held_out": list(held_out),
            "train_s": report.info.get("meta_train_seconds"),
            "projection_kept": report.info.get("projection_kept"),
        })  # fmt: skip
    table = pd.concat(tables)
    ctx.info["table"] = table.to_dict(orient="records")


def _instacart_items() -> pd.DataFrame:
    path = SHARED_DATASETS_DIR / "instacart" / "items.csv.gz"
    if not path.exists():
        raise Skip("instacart items not found under the shared datasets")
    return pd.read_csv(path).dropna(subset=["name", "aisle", "department"])


# The issue's reference: plain MiniLM prototypes "reach about 0.63 all-way and 0.86 5-way 5-shot
# on held-out Instacart departments" (the evaluation's, which the shared data leaves out), and its
# bars for the engine there.
REFERENCE_PLAIN = {"5-way 5-shot": 0.86, "all-way 5-shot": 0.63}
BARS = {"5-way 5-shot": 0.90, "all-way 5-shot": 0.72, "5-way 1-shot": 0.78}
# Which plain-prototype figure measures a setting's difficulty (no reference is given at 1 shot).
DIFFICULTY = {"5-way 5-shot": "5-way 5-shot", "5-way 1-shot": "5-way 5-shot",
              "all-way 5-shot": "all-way 5-shot"}  # fmt: skip
MATCHED = {"5-way 5-shot": "cat_matched_5way_acc_k5", "5-way 1-shot": "cat_matched_5way_acc_k1",
           "all-way 5-shot": "cat_matched_allway_acc_k5"}  # fmt: skip
MATCHED_NATURAL = "cat_matched_5way_all_queries_acc_k5"
# Catch-all departments hold no product family of their own ("missing", "other", "bulk"): the
# evaluation's departments are product departments, so the matched sets leave these out.
CATCH_ALL = ("missing", "other", "bulk")
NEAR = 0.02  # a set is "at the reference" when its plain figure is within this of it


def step_matched(ctx: StepContext) -> None:
    """The engine at the reference difficulty: random sets of 4-6 departments are held out, plain
    prototypes and the engine are measured on each, and the engine's accuracy is read off a
    straight-line fit (engine against plain, over the sets) at the issue's reference plain figures.

    The engine here is the encoder space with the training-free steps: what ``train-categories``
    keeps on Instacart (its learned projection has not transferred on any fold), so no set needs
    its own training. An estimate, not a measurement on the evaluation's departments.
    """
    from metarec_core.categories import evaluate as ev
    from metarec_core.categories.config import CategoryConfig
    from metarec_core.categories.model import CategoryModel
    from metarec_core.embed.service import embed_texts

    items = _instacart_items()
    encoder, config = None, CategoryConfig(device=ctx.device)
    if ctx.tiny:
        from metarec_core.embed.encoder import FakeEncoder

        items = items.groupby("aisle").head(8)
        encoder, config = FakeEncoder(dim=64), CategoryConfig(encoder="fake", device=ctx.device)
    items = items[~items.department.isin(CATCH_ALL)].reset_index(drop=True)
    cats = sorted(items.aisle.astype(str).unique())
    labels = items.aisle.astype(str).map({c: i for i, c in enumerate(cats)}).to_numpy(np.int64)
    texts = items.name.astype(str).tolist()
    x = embed_texts(texts, encoder, config.encoder)
    names = embed_texts(cats, encoder, config.encoder)
    methods = {
        "plain": ev.BASELINES["plain-prototypes"],
        ENGINE: ev.engine_method(CategoryModel.untrained(config)),
    }
    departments = sorted(items.department.unique())
    rng = np.random.default_rng(0)
    sets: set[tuple[str, ...]] = set()
    n_sets = ctx.pick(3, 40, 200)
    while len(sets) < n_sets:
        size = int(rng.integers(4, 7))
        sets.add(tuple(sorted(rng.choice(departments, size, replace=False).tolist())))
    n_episodes = ctx.pick(5, 100, 100)
    results = []
    for held in sorted(sets):
        data = ev.HeldOut.select(
            x, texts, labels, names, cats, items.department.isin(held).to_numpy()
        )
        rows = ev.episodes_eval(data, methods, 5, 1, n_episodes, seed=101)
        rows += ev.episodes_eval(data, methods, 5, 5, n_episodes, seed=105)
        rows += ev.allway_eval(data, methods, 5, 1, seed=105)
        acc = {(r["method"], r["setting"]): r["mean"] for r in rows if r["metric"] == "accuracy"}
        results.append({"departments": list(held), "n_categories": len(data.rows),
                        **{f"{m} {s}": round(v, 4) for (m, s), v in acc.items()}})  # fmt: skip
    ctx.info["sets"] = results
    ctx.info["fits"] = matched_fits(results)
    for setting, fit in ctx.info["fits"].items():
        ctx.add(MATCHED[setting], fit["at_reference"])
    # the sets at the reference again, 5-way 5-shot with every other product of the five
    # categories as queries (their natural sizes) instead of 15 each
    ref = REFERENCE_PLAIN["5-way 5-shot"]
    # (tiny mode's fake encoder is nowhere near the reference: its closest sets stand in)
    near = sorted(results, key=lambda r: abs(r["plain 5-way 5-shot"] - ref))
    near = [r for r in near if ctx.tiny or abs(r["plain 5-way 5-shot"] - ref) <= NEAR]
    natural = []
    for r in near[: ctx.pick(2, 4, 12)]:
        mask = items.department.isin(r["departments"]).to_numpy()
        data = ev.HeldOut.select(x, texts, labels, names, cats, mask)
        rows = ev.episodes_eval(data, methods, 5, 5, ctx.pick(3, 30, 60), n_query=None, seed=205)
        natural.append({"departments": r["departments"], **{row["method"]: round(row["mean"], 4)
                        for row in rows}})  # fmt: skip
        ctx.add(MATCHED_NATURAL, natural[-1][ENGINE])
    ctx.info["natural_5way_5shot"] = natural


def matched_fits(results: list[dict], boot: int = 500) -> dict[str, dict]:
    """Per setting: engine = a + b * plain over the sets, read at the reference plain figure,
    with a bootstrap interval over sets (they share departments, so it is on the narrow side),
    and the mean of the sets whose plain figure is within ``NEAR`` of the reference."""
    fits = {}
    for setting, by in DIFFICULTY.items():
        ref = REFERENCE_PLAIN[by]
        plain = np.array([r[f"plain {by}"] for r in results])
        ours = np.array([r[f"{ENGINE} {setting}"] for r in results])
        rng = np.random.default_rng(0)
        draws = [_line_at(plain, ours, rng.integers(0, len(plain), len(plain)), ref)
                 for _ in range(boot)]  # fmt: skip
        near = np.abs(plain - ref) <= NEAR
        fits[setting] = {
            "reference_plain": ref,
            "at_reference": round(_line_at(plain, ours, np.arange(len(plain)), ref), 4),
            "interval": [round(float(q), 4) for q in np.quantile(draws, [0.025, 0.975])],
            "bar": BARS[setting],
            "near_mean": round(float(ours[near].mean()), 4) if near.any() else None,
            "near_n": int(near.sum()),
            "plain_range": [round(float(plain.min()), 4), round(float(plain.max()), 4)],
            "extrapolated": bool(ref < plain.min() or ref > plain.max()),
            "n_sets": len(plain),
        }
    return fits


def _line_at(x: np.ndarray, y: np.ndarray, idx: np.ndarray, at: float) -> float:
    """The least-squares line of y on x over rows ``idx``, read at ``at`` (their mean y when the
    x are all equal)."""
    if np.ptp(x[idx]) == 0:
        return float(y[idx].mean())
    b, a = np.polyfit(x[idx], y[idx], 1)
    return float(a + b * at)


def _department_sets(departments: list[str], n: int = 6, size: int = 6) -> list[list[str]]:
    """``n`` distinct random sets of ``size`` departments (seeded)."""
    rng = np.random.default_rng(0)
    out: list[list[str]] = []
    while len(out) < n:
        chosen = sorted(rng.choice(departments, size, replace=False).tolist())
        if chosen not in out:
            out.append(chosen)
    return out


ENC_KEYS = {("5-way 5-shot", "5way_acc_k5"), ("5-way 1-shot", "5way_acc_k1"),
            ("all-way 5-shot", "allway_acc_k5"), ("all-way 1-shot", "allway_acc_k1")}  # fmt: skip


def step_encoders(ctx: StepContext) -> None:
    """Installed encoders on the same held-out tasks (the engine without meta-training, which is
    what train-categories keeps on Instacart)."""
    from metarec_core.categories import evaluate as ev
    from metarec_core.categories.model import CategoryModel
    from metarec_core.embed.registry import installed_encoders
    from metarec_core.embed.service import embed_texts, lazy_encoder

    items = _instacart_items()
    items = items[~items.department.isin(CATCH_ALL)]
    per_aisle = ctx.pick(8, 40, None)
    if per_aisle:
        items = items.groupby("aisle").head(per_aisle)
    items = items.reset_index(drop=True)
    names = ["fake"] if ctx.tiny else [e for e in installed_encoders() if e != "multilingual"]
    cats = sorted(items.aisle.astype(str).unique())
    labels = items.aisle.astype(str).map({c: i for i, c in enumerate(cats)}).to_numpy(np.int64)
    texts = items.name.astype(str).tolist()
    sets = _department_sets(sorted(items.department.unique()), ctx.pick(2, 6, 6))
    n_episodes = ctx.pick(5, 100, 200)
    for name in names:
        enc = lazy_encoder(name)
        x, x_names = embed_texts(texts, enc), embed_texts(cats, enc)
        methods = {"plain": ev.BASELINES["plain-prototypes"],
                   ENGINE: ev.engine_method(CategoryModel.untrained())}  # fmt: skip
        for held in sets:
            mask = items.department.isin(held).to_numpy()
            data = ev.HeldOut.select(x, texts, labels, x_names, cats, mask)
            rows = ev.episodes_eval(data, methods, 5, 5, n_episodes, seed=5)
            rows += ev.episodes_eval(data, methods, 5, 1, n_episodes, seed=1)
            rows += ev.allway_eval(data, methods, 5, 2, seed=5)
            rows += ev.allway_eval(data, methods, 1, 2, seed=1)
            fold = {f"{r['method']} {r['setting']}": round(r["mean"], 4) for r in rows
                    if r["metric"] == "accuracy"}  # fmt: skip
            ctx.info.setdefault(name, []).append({"departments": held, **fold})
            for setting, key in ENC_KEYS:
                ctx.add(f"cat_enc_{name}_{key}", fold[f"{ENGINE} {setting}"])
                ctx.add(f"cat_enc_{name}_{key}_plain", fold[f"plain {setting}"])


def step_multilingual(ctx: StepContext) -> None:
    """Chinese titles and their English translations through every installed encoder."""
    from metarec_core.categories import evaluate as ev
    from metarec_core.categories.model import CategoryModel
    from metarec_core.embed.registry import installed_encoders
    from metarec_core.embed.service import embed_texts, lazy_encoder

    df = pd.read_csv(Path(__file__).parent / "data" / "zh_products.csv")
    names = ["fake"] if ctx.tiny else installed_encoders()
    methods = {ENGINE: ev.engine_method(CategoryModel.untrained())}
    for name in names:
        enc = lazy_encoder(name)
        for lang, text, category in (
            ("zh", "title", "category"),
            ("en", "title_en", "category_en"),
        ):
            cats = sorted(df[category].unique())
            y = df[category].map({c: i for i, c in enumerate(cats)}).to_numpy(np.int64)
            x = embed_texts(df[text].tolist(), enc)
            data = ev.HeldOut(x, df[text].tolist(), y, embed_texts(cats, enc), cats)
            for r in ev.allway_eval(data, methods, 5, ctx.pick(3, 20, 20), seed=5):
                if r["metric"] == "accuracy":
                    ctx.add(f"cat_{lang}_allway_acc_k5_{name}", r["mean"])


STEPS = [
    Step("evaluate", step_evaluate, tuple(HEADLINE.values()),
         {"tiny": 120, "quick": 900, "full": 5400}),
    Step("matched", step_matched, (*MATCHED.values(), MATCHED_NATURAL),
         {"tiny": 120, "quick": 600, "full": 2400}),
    Step("encoders", step_encoders, tuple(f"cat_enc_{e}_{k}" for e in ("minilm", "mpnet")
         for _, k in sorted(ENC_KEYS)), {"tiny": 120, "quick": 1800, "full": 5400}),
    Step("multilingual", step_multilingual, tuple(f"cat_{lang}_allway_acc_k5_{e}"
         for lang in ("zh", "en") for e in ("minilm", "mpnet", "multilingual")),
         {"tiny": 60, "quick": 600, "full": 600}),
]  # fmt: skip

if __name__ == "__main__":
    sys.exit(bench_main("bench_categories_quality", "categories_quality", STEPS))
