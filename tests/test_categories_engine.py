"""Unit tests of the few-shot category engine on FakeEncoder embeddings and tiny data."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from metarec_core.categories import CategoryConfig, CategoryModel, classify
from metarec_core.categories.aids import label_next
from metarec_core.categories.config import EngineConstants
from metarec_core.categories.engine import (
    leave_one_out_scores,
    mixture_threshold,
    propagation_alpha,
    score,
)
from metarec_core.categories.episodes import EpisodeSampler
from metarec_core.categories.protonet import (
    best_example_sims,
    hub_corrected,
    l2n,
    label_propagation,
    prototypes,
    reestimated_prototypes,
)
from metarec_core.embed.encoder import FakeEncoder
from metarec_core.errors import ValidationError

FRUIT = ["fresh banana bunch", "red apple bag", "ripe mango", "green pear", "navel orange"]
DAIRY = [
    "whole milk gallon",
    "greek yogurt plain",
    "cheddar cheese block",
    "salted butter",
    "skim milk",
]
SOAP = [
    "lavender hand soap",
    "body wash citrus",
    "bar soap oatmeal",
    "liquid hand soap refill",
    "foaming soap",
]


class TopicEncoder:
    """A tiny deterministic encoder with clear topics: keyword dims plus a little hashed noise."""

    model_id = "topic-test-32"
    dim = 32
    TOPICS: ClassVar[dict[str, tuple[str, ...]]] = {
        "fruit": ("banana", "apple", "mango", "pear", "orange", "fruit", "bananas"),
        "dairy": ("milk", "yogurt", "cheese", "butter", "dairy"),
        "soap": ("soap", "wash", "foaming", "body"),
    }

    def encode(self, texts, batch_size=64, progress=None):
        fake = FakeEncoder(self.dim)
        out = 0.3 * fake.encode(list(texts))
        for r, t in enumerate(texts):
            for d, words in enumerate(self.TOPICS.values()):
                out[r, d] += sum(w in t.lower().split() for w in words)
        return l2n(out).astype(np.float32)


def _support(k: int = 3) -> pd.DataFrame:
    rows = []
    for cat, titles in (("fruit", FRUIT), ("dairy", DAIRY), ("soap", SOAP)):
        rows += [(f"{cat}-{i}", t, cat) for i, t in enumerate(titles[:k])]
    return pd.DataFrame(rows, columns=["item_id", "title", "category"])


def _query() -> pd.DataFrame:
    titles = FRUIT[3:] + DAIRY[3:] + SOAP[3:]
    return pd.DataFrame({"item_id": [f"q{i}" for i in range(len(titles))], "title": titles})


def test_prototype_equals_class_mean():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(10, 4)).astype(np.float32)
    y = np.array([0, 1, 0, 2, 1, 0, 2, 2, 1, 0])
    p = prototypes(z, y, 3)
    for c in range(3):
        np.testing.assert_allclose(p[c], z[y == c].mean(0), rtol=1e-6, atol=1e-6)


def test_plain_classify_prototypes_are_normalised_class_means(tmp_path):
    enc = FakeEncoder()
    plain = CategoryModel.plain()
    result = classify(_support(), _query(), plain, encoder=enc, cache_dir=tmp_path)
    s = _support()
    x = enc.encode(s["title"].tolist())
    for c, name in enumerate(result.categories):
        mean = x[(s["category"] == name).to_numpy()].mean(0)
        np.testing.assert_allclose(result.prototypes[c], l2n(mean[None])[0], atol=1e-5)


def test_classify_is_deterministic_and_sensible(tmp_path):
    enc = TopicEncoder()
    model = CategoryModel(CategoryConfig(encoder="fake"), np.eye(32, dtype=np.float32), 10.0, "")
    a = classify(_support(), _query(), model, encoder=enc, cache_dir=tmp_path).predictions
    b = classify(_support(), _query(), model, encoder=enc, cache_dir=tmp_path).predictions
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["item_id", "category", "confidence"]
    assert a["confidence"].between(0, 1).all()
    assert a["category"].tolist() == ["fruit"] * 2 + ["dairy"] * 2 + ["soap"] * 2


def test_open_set_rejects_foreign_item(tmp_path):
    enc = TopicEncoder()
    query = pd.DataFrame(
        {"item_id": ["in", "out"], "title": ["yellow banana", "zxqv 9000 turbo wrench kit"]}
    )
    model = CategoryModel.plain(
        CategoryConfig(encoder="fake", engine=EngineConstants(center=False, name_weight=0))
    )
    res = classify(_support(5), query, model, open_set=True, encoder=enc, cache_dir=tmp_path)
    pred = res.predictions.set_index("item_id")["category"]
    assert pred["out"] is None
    assert pred["in"] == "fruit"
    assert res.threshold is not None


def test_leave_one_out_matches_explicit_loop():
    rng = np.random.default_rng(1)
    z = l2n(rng.normal(size=(9, 5)))
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    pred, sim = leave_one_out_scores(z, y, 3, None, 0.0)
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        p = l2n(prototypes(z[keep], y[keep], 3))
        assert pred[i] == int((z[i] @ p.T).argmax())
        assert sim[i] == pytest.approx(float(z[i] @ p[y[i]]), abs=1e-5)


def test_episode_sampler_is_seeded_and_disjoint():
    y = np.repeat(np.arange(8), 10)
    a = EpisodeSampler(y, seed=3).sample(5, 2, 4)
    b = EpisodeSampler(y, seed=3).sample(5, 2, 4)
    np.testing.assert_array_equal(a.support, b.support)
    assert not set(a.support) & set(a.query)
    assert (y[a.support] == a.classes[a.support_labels]).all()


def test_score_names_only_used_when_support_agrees():
    rng = np.random.default_rng(0)
    centers = l2n(rng.normal(size=(3, 16)))
    xs = l2n(np.repeat(centers, 3, axis=0) + 0.1 * rng.normal(size=(9, 16)))
    ys = np.repeat(np.arange(3), 3)
    model = CategoryModel(CategoryConfig(encoder="fake"), None, 10.0, "")
    good = score(model, xs, ys, xs[:2], 3, centers)
    bad = score(model, xs, ys, xs[:2], 3, centers[[1, 2, 0]])
    assert good.used_names and not bad.used_names


@pytest.mark.parametrize(
    "support, query, message",
    [
        (pd.DataFrame({"item_id": ["a"], "title": ["x"]}), _query(), "missing column category"),
        (
            _support(),
            pd.DataFrame({"item_id": ["fruit-0"], "title": ["x"]}),
            "both support and query",
        ),
        (_support().assign(category="fruit"), _query(), "only 1 category .*--open-set"),
        (
            pd.concat(
                [
                    _support(),
                    pd.DataFrame([["e1", "", "empty"]], columns=["item_id", "title", "category"]),
                ]
            ),
            _query(),
            "fewer than 1 example",
        ),
        (_support(), pd.DataFrame({"sku_code": ["a"], "title": ["x"]}), "missing column item_id"),
    ],
)
def test_bad_input_gives_one_clear_error(support, query, message, tmp_path):
    with pytest.raises(ValidationError, match=message):
        classify(support, query, encoder=FakeEncoder(), cache_dir=tmp_path)


def test_empty_titles_are_skipped_and_counted(tmp_path):
    query = pd.concat([_query(), pd.DataFrame({"item_id": ["blank"], "title": [None]})])
    res = classify(_support(), query, encoder=FakeEncoder(), cache_dir=tmp_path)
    assert res.skipped_empty == {"support": 0, "query": 1}
    assert "blank" not in set(res.predictions["item_id"])


def test_config_validates():
    with pytest.raises(ValidationError):
        CategoryConfig(n_way=1)
    assert CategoryConfig.from_dict({"rank": 8, "unknown": 1}).rank == 8
    with pytest.raises(ValidationError, match="EngineConstants: sharpen"):
        EngineConstants(sharpen=0.0)


def test_config_round_trips_and_reads_flat_engine_constants():
    cfg = CategoryConfig(rank=8, engine=EngineConstants(hub_correction=0.1))
    assert CategoryConfig.from_dict(cfg.to_dict()) == cfg
    # a flat config (every constant beside the settings) still loads, old keys ignored
    flat = {"rank": 8, "hub_correction": 0.1, "refine_steps": 0, "tune_steps": 0}
    assert CategoryConfig.from_dict(flat) == cfg
    with pytest.raises(ValidationError, match="engine must be a mapping"):
        CategoryConfig.from_dict({"engine": 3})


def test_label_propagation_follows_the_neighbourhood():
    # Two tight clusters; the prior is wrong for one query that sits inside cluster 0.
    rng = np.random.default_rng(0)
    centers = l2n(rng.normal(size=(2, 16)))
    zq = l2n(np.repeat(centers, 15, axis=0) + 0.05 * rng.normal(size=(30, 16)))
    zs = l2n(centers + 0.05 * rng.normal(size=(2, 16)))
    prior = np.tile([0.5, 0.5], (30, 1))
    prior[3] = [0.2, 0.8]  # misled by its own prototype similarity
    f = label_propagation(zs, np.array([0, 1]), zq, prior, 0.9, 5, 0.3)
    np.testing.assert_allclose(f.sum(1), 1.0, atol=1e-6)
    assert (f.argmax(1) == np.repeat([0, 1], 15)).all()


def test_spread_through_torch_equals_the_iteration_in_scipy():
    """Label propagation's rounds run as torch CSR products; they equal the plain iteration."""
    from metarec_core.categories.protonet import knn_graph, spread_rounds

    rng = np.random.default_rng(3)
    graph = knn_graph(l2n(rng.normal(size=(400, 12))).astype(np.float32), 7)
    seeds = rng.random((400, 5)).astype(np.float32)
    f = seeds
    for _ in range(20):
        f = 0.8 * (graph @ f) + 0.2 * seeds
    np.testing.assert_allclose(spread_rounds(graph, seeds, 0.8, 20), f, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(spread_rounds(graph, seeds, 0.8, 0), seeds)


def test_propagation_spreads_further_with_more_queries_per_category():
    cfg = CategoryConfig()
    alphas = [propagation_alpha(cfg.engine, q, 5) for q in (10, 25, 75, 500, 2000, 10**6)]
    assert alphas == sorted(alphas) and alphas[0] < alphas[-1]
    assert alphas[0] == pytest.approx(0.6) and alphas[-1] == pytest.approx(0.99)  # bounds
    # the same queries over more categories spread less far
    assert propagation_alpha(cfg.engine, 500, 50) < propagation_alpha(cfg.engine, 500, 5)
    fixed = CategoryConfig(
        engine=EngineConstants(propagate_alpha=0.8, propagate_alpha_by_queries=False)
    )
    assert (
        propagation_alpha(fixed.engine, 10, 5) == propagation_alpha(fixed.engine, 10**6, 5) == 0.8
    )


def test_hub_correction_stops_a_broad_prototype_taking_its_neighbours_queries():
    # Prototype 0 is a hub: its own 30 queries sit very close to it (0.9), and it is also
    # slightly closer (0.62) to prototype 1's 30 queries than prototype 1 is (0.60).
    sims = np.zeros((60, 2), dtype=np.float32)
    sims[:30] = [0.9, 0.3]
    sims[30:] = [0.62, 0.60]
    truth = np.repeat([0, 1], 30)
    assert (sims.argmax(1) == 0).all()  # uncorrected, the hub takes everything
    fixed = hub_corrected(sims, 0.25, 30)
    assert (fixed.argmax(1) == truth).all()
    # the shift is per prototype: each query's ranking of the others is unchanged
    np.testing.assert_allclose(sims - fixed, np.tile([0.225, 0.15], (60, 1)), atol=1e-6)
    np.testing.assert_array_equal(hub_corrected(sims, 0.0, 30), sims)


def test_score_applies_hub_correction_only_with_enough_queries():
    rng = np.random.default_rng(0)
    xs, ys = l2n(rng.normal(size=(6, 16))).astype(np.float32), np.repeat([0, 1, 2], 2)
    on, off = (
        CategoryModel.untrained(
            CategoryConfig(engine=EngineConstants(hub_correction=w, propagate_alpha=0.0))
        )
        for w in (0.25, 0.0)
    )
    for n_query, differs in ((29, False), (30, True)):
        xq = l2n(rng.normal(size=(n_query, 16))).astype(np.float32)
        a, b = (score(m, xs, ys, xq, 3).probs for m in (on, off))
        assert (not np.allclose(a, b)) == differs
    assert CategoryModel.plain().config.engine.hub_correction == 0.0


def test_best_example_sims_takes_each_categorys_closest_item():
    rng = np.random.default_rng(0)
    q, s = rng.normal(size=(7, 4)).astype(np.float32), rng.normal(size=(9, 4)).astype(np.float32)
    y = np.array([2, 0, 2, 0, 0, 3, 2, 3, 0])
    got = best_example_sims(q, s, y, 5)
    for c in (0, 2, 3):
        np.testing.assert_allclose(got[:, c], (q @ s[y == c].T).max(1), rtol=1e-6)
    assert np.isnan(got[:, [1, 4]]).all()  # no items: no similarity
    assert best_example_sims(q[:0], s, y, 5).shape == (0, 5)


def test_a_varied_category_keeps_queries_near_one_of_its_examples():
    """Category 0 has two kinds of product (e1, e2), so its prototype sits between them;
    category 1's (mostly e1, some e3) is closer to a query of the first kind. The closest
    example's share gives that query to category 0; prototypes alone give it to category 1."""
    e = np.eye(4, dtype=np.float32)
    xs = np.stack([e[0], e[1], e[0], e[1], l2n(0.75 * e[0] + 0.66 * e[2])])
    ys = np.array([0, 0, 0, 0, 1])
    xq = l2n(e[0] + 0.05 * e[3])[None, :]
    flat = dict(center=False, name_weight=0.0, propagate_alpha=0.0, hub_correction=0.0)
    with_share, without = (
        CategoryModel.untrained(CategoryConfig(engine=EngineConstants(**flat, example_share=w)))
        for w in (0.3, 0.0)
    )
    assert score(with_share, xs, ys, xq, 2).pred[0] == 0
    assert score(without, xs, ys, xq, 2).pred[0] == 1
    assert CategoryModel.plain().config.engine.example_share == 0.0


def test_reestimated_prototypes_move_towards_the_queries_their_category_holds():
    rng = np.random.default_rng(0)
    protos = l2n(rng.normal(size=(3, 16))).astype(np.float32)
    target = l2n(rng.normal(size=(1, 16)))
    zq = l2n(np.repeat(target, 10, axis=0) + 0.05 * rng.normal(size=(10, 16))).astype(np.float32)
    probs = np.tile([0.9, 0.1, 0.0], (10, 1))  # category 0 holds them, category 2 nothing
    moved = reestimated_prototypes(protos, zq, probs, 0.5)
    np.testing.assert_allclose(np.linalg.norm(moved, axis=1), 1.0, atol=1e-5)
    assert (moved[0] @ target.T).item() > (protos[0] @ target.T).item() + 0.1
    np.testing.assert_allclose(moved[2], protos[2], atol=1e-6)  # no queries: unchanged
    np.testing.assert_allclose(reestimated_prototypes(protos, zq, probs, 0.0), protos, atol=1e-6)


def test_second_propagation_round_only_with_few_queries_per_category():
    rng = np.random.default_rng(1)
    xs, ys = l2n(rng.normal(size=(6, 16))).astype(np.float32), np.repeat([0, 1, 2], 2)
    on = CategoryModel.untrained(
        CategoryConfig(engine=EngineConstants(reestimate_max_per_category=10))
    )
    off = CategoryModel.untrained(CategoryConfig(engine=EngineConstants(reestimate_weight=0.0)))
    for n_query, differs in ((30, True), (31, False)):  # 10 per category, then just over
        xq = l2n(rng.normal(size=(n_query, 16))).astype(np.float32)
        a, b = (score(m, xs, ys, xq, 3).probs for m in (on, off))
        assert (not np.allclose(a, b)) == differs


def test_untrained_is_the_default_and_deterministic(tmp_path):
    enc = TopicEncoder()
    titles = FRUIT + DAIRY + SOAP
    query = pd.DataFrame(
        {
            "item_id": [f"q{i}" for i in range(30)],
            "title": [f"{t} {i}" for i in range(2) for t in titles],
        }
    )
    a = classify(_support(2), query, encoder=enc, cache_dir=tmp_path)
    b = classify(_support(2), query, encoder=enc, cache_dir=tmp_path)
    assert a.model_used.startswith("encoder prototypes without meta-training")
    pd.testing.assert_frame_equal(a.predictions, b.predictions)
    truth = [t for _ in range(2) for t in ["fruit"] * 5 + ["dairy"] * 5 + ["soap"] * 5]
    assert (a.predictions["category"] == truth).mean() >= 0.9
    np.testing.assert_allclose(a.scores.probs.sum(1), 1.0, atol=1e-6)


def test_open_set_threshold_separates_support_from_other_categories(tmp_path):
    enc = TopicEncoder()
    titles = FRUIT[3:] + DAIRY[3:] + SOAP[3:]
    foreign = ["zxqv 9000 turbo wrench kit", "qwerty drill bit 12mm", "xk-77 spark plug"]
    query = pd.DataFrame(
        {"item_id": [f"q{i}" for i in range(len(titles) + 3)], "title": titles + foreign}
    )
    res = classify(_support(3), query, open_set=True, encoder=enc, cache_dir=tmp_path)
    pred = res.predictions["category"]
    assert pred.iloc[-3:].isna().all()  # the foreign items
    assert pred.iloc[:-3].notna().mean() >= 0.5
    conf = res.predictions["confidence"]
    assert conf.between(0, 1).all()
    quantile = CategoryModel.untrained(
        CategoryConfig(engine=EngineConstants(open_set_rule="quantile"))
    )
    low = classify(_support(3), query, quantile, open_set=True, encoder=enc, cache_dir=tmp_path)
    assert res.threshold >= low.threshold


@pytest.mark.slow
def test_projection_is_kept_only_when_it_transfers(monkeypatch):
    from metarec_core.categories import train
    from metarec_core.categories.train import fit_projection

    monkeypatch.setattr(train, "VALIDATION_EPISODES", 6)

    rng = np.random.default_rng(0)
    centers = l2n(rng.normal(size=(16, 16)))
    y = np.repeat(np.arange(16), 12)
    x = l2n(centers[y] + 0.3 * rng.normal(size=(len(y), 16))).astype(np.float32)
    cats = [f"c{i}" for i in range(16)]
    cfg = CategoryConfig(encoder="fake", episodes=20, rank=4, n_way=5)
    matrix, _, history, validation = fit_projection(x, y, centers, cats, cfg)
    assert validation["held_back_categories"]  # whole groups were held back
    assert (matrix is not None) == validation["projection_kept"]
    if matrix is None:
        assert "did not transfer" in history["note"]
    off = fit_projection(x, y, centers, cats, CategoryConfig(encoder="fake", episodes=0))
    assert off[0] is None and "disabled" in off[2]["note"]


def test_name_weight_grows_as_examples_shrink():
    from metarec_core.categories.engine import name_weights

    w = name_weights(1.0, np.array([0, 1, 4, 16]), by_shots=True)
    np.testing.assert_allclose(w, [2.0, 2.0, 1.0, 0.5])
    np.testing.assert_allclose(name_weights(0.7, np.array([1, 5]), by_shots=False), [0.7, 0.7])


def test_one_shot_classify(tmp_path):
    res = classify(_support(1), _query(), encoder=TopicEncoder(), cache_dir=tmp_path)
    assert res.predictions["category"].tolist()[:2] == ["fruit", "fruit"]


def test_names_beat_chance_only_clearly_above_it():
    from metarec_core.categories.engine import names_beat_chance

    eye = np.eye(8, dtype=np.float32)
    labels = np.arange(4)
    assert names_beat_chance(eye[:4], labels, eye[:4])  # every example finds its own name
    assert not names_beat_chance(eye[:4], labels, eye[[1, 2, 3, 0]])  # every name is another's
    # 25 categories: 2 of 25 examples recognised is twice chance, 1 of 25 is not
    names = l2n(np.random.default_rng(0).normal(size=(25, 16))).astype(np.float32)
    wrong = np.roll(np.arange(25), 1)
    assert not names_beat_chance(names[wrong], np.arange(25), names)
    two = wrong.copy()
    two[:2] = [0, 1]
    assert names_beat_chance(names[two], np.arange(25), names)
    one = wrong.copy()
    one[:1] = [0]
    assert not names_beat_chance(names[one], np.arange(25), names)


def test_one_shot_name_prior_needs_twice_chance_and_a_fifth_of_the_support():
    """At 1 shot (nothing to leave out) the names are used when they alone recognise at least
    2 / C of the examples and at least a fifth: 2 of 5 in a 5-way task, 5 of 25 in a 25-way one."""
    rng = np.random.default_rng(0)
    model = CategoryModel(CategoryConfig(encoder="fake"), None, 10.0, "")

    def used(n: int, recognised: int) -> bool:
        names = l2n(rng.normal(size=(n, 32))).astype(np.float32)
        own = np.roll(np.arange(n), 1)  # every example closest to another category's name
        own[:recognised] = np.arange(recognised)
        xs = l2n(names[own] + 0.05 * rng.normal(size=(n, 32))).astype(np.float32)
        return score(model, xs, np.arange(n), xs[:1], n, names).used_names

    assert used(5, 2) and not used(5, 1)  # 2 / 5 is twice chance
    assert used(25, 5) and not used(25, 4)  # twice chance would be 2 of 25: the fifth decides


def test_one_category_with_the_open_set_keeps_its_products_and_rejects_the_rest(tmp_path):
    enc = TopicEncoder()
    support = _support(3).query("category == 'fruit'")
    query = pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d"],
            "title": ["yellow banana", "apple and mango fruit cup", DAIRY[4], SOAP[4]],
        }
    )
    res = classify(support, query, open_set=True, encoder=enc, cache_dir=tmp_path)
    pred = res.predictions.set_index("item_id")["category"]
    assert res.categories == ["fruit"] and res.threshold is not None
    assert pred["a"] == "fruit" and pred["b"] == "fruit"
    assert pred["c"] is None and pred["d"] is None
    nxt = label_next(res, n=2)
    assert len(nxt) == 2 and nxt["reason"].str.contains("threshold of fruit").all()
    gap = res.scores.sims[:, 0] - res.threshold
    assert set(nxt["item_id"]) == set(query["item_id"].to_numpy()[np.argsort(np.abs(gap))[:2]])


def test_mixture_threshold_falls_between_a_large_low_mode_and_a_small_high_one():
    rng = np.random.default_rng(0)
    sims = np.concatenate([rng.normal(0.0, 0.05, 900), rng.normal(0.5, 0.05, 100)])
    t = mixture_threshold(sims)
    assert 0.1 < t < 0.4
    assert ((sims >= t) == (np.arange(1000) >= 900)).mean() > 0.99


def test_one_category_one_shot_threshold_comes_from_the_queries():
    rng = np.random.default_rng(3)
    proto = l2n(rng.normal(size=(1, 64)))
    near = l2n(proto + 0.1 * rng.normal(size=(20, 64)))
    far = l2n(rng.normal(size=(180, 64)))
    model = CategoryModel.untrained(
        CategoryConfig(encoder="fake", engine=EngineConstants(center=False))
    )
    s = score(model, proto, np.zeros(1, np.int64), np.concatenate([near, far]), 1, open_set=True)
    assert s.threshold == pytest.approx(mixture_threshold(s.sims[:, 0]))
    accepted = s.pred >= 0
    assert accepted[:20].mean() > 0.8 and accepted[20:].mean() < 0.1


def test_one_category_uses_its_name_only_when_it_describes_the_examples():
    rng = np.random.default_rng(4)
    topic = l2n(rng.normal(size=(1, 16)))
    xs = l2n(topic + 0.5 * rng.normal(size=(3, 16)))
    xq = l2n(rng.normal(size=(60, 16)))
    model = CategoryModel.untrained(
        CategoryConfig(encoder="fake", engine=EngineConstants(center=False))
    )
    ys = np.zeros(3, np.int64)
    assert score(model, xs, ys, xq, 1, topic, open_set=True).used_names
    unrelated = l2n(rng.normal(size=(1, 16)))
    assert not score(model, xs, ys, xq, 1, unrelated, open_set=True).used_names


def test_open_set_threshold_averages_the_support_and_the_queries_with_enough_queries():
    rng = np.random.default_rng(5)
    centers = l2n(rng.normal(size=(3, 32)))
    xs = l2n(np.repeat(centers, 4, axis=0) + 0.3 * rng.normal(size=(12, 32)))
    ys = np.repeat(np.arange(3), 4)
    xq = l2n(np.concatenate([np.repeat(centers, 10, 0) + 0.3 * rng.normal(size=(30, 32)),
                             rng.normal(size=(60, 32))]))  # fmt: skip

    def run(weight: float, queries: np.ndarray):
        cfg = CategoryConfig(encoder="fake", engine=EngineConstants(open_set_query_weight=weight))
        return score(CategoryModel.untrained(cfg), xs, ys, queries, 3, open_set=True)

    alone, mixed = run(0.0, xq), run(0.5, xq)
    queries_say = mixture_threshold(mixed.sims.max(1))
    assert mixed.threshold == pytest.approx(0.5 * alone.threshold + 0.5 * queries_say)
    assert alone.threshold != pytest.approx(queries_say)
    few = xq[:40]  # under mixture_min_queries: the support alone
    assert run(0.5, few).threshold == pytest.approx(run(0.0, few).threshold)


def test_used_names_join_the_propagation_graph_as_labelled_items():
    rng = np.random.default_rng(6)
    names = l2n(rng.normal(size=(2, 32)))
    xs = l2n(names + 0.4 * rng.normal(size=(2, 32)))  # one example each, its name closest
    near_name = l2n(names[[0]] + 0.2 * rng.normal(size=(15, 32)))  # read like name 0
    rest = l2n(names[[1]] + 0.6 * rng.normal(size=(15, 32)))
    xq, ys = np.concatenate([near_name, rest]), np.arange(2)

    def class0(nodes: bool) -> float:
        cfg = CategoryConfig(encoder="fake", engine=EngineConstants(name_nodes=nodes, center=False))
        s = score(CategoryModel.untrained(cfg), xs, ys, xq, 2, names)
        assert s.used_names
        return float(s.probs[:15, 0].mean())

    assert class0(True) > class0(False)  # the names pull the products that read like them


def test_name_prior_may_cost_one_leave_one_out_item_but_not_two():
    seen = set()
    for seed in range(200):
        rng = np.random.default_rng(seed)
        centers = l2n(rng.normal(size=(3, 16)))
        xs = l2n(np.repeat(centers, 3, axis=0) + 0.6 * rng.normal(size=(9, 16)))
        ys = np.repeat(np.arange(3), 3)
        names = l2n(centers + 0.9 * rng.normal(size=(3, 16)))
        model = CategoryModel(
            CategoryConfig(encoder="fake", engine=EngineConstants(center=False)), None, 10.0, ""
        )
        pred_n, _ = leave_one_out_scores(xs, ys, 3, names, 1.0, True)
        pred_0, _ = leave_one_out_scores(xs, ys, 3, None, 0.0)
        lost = int((pred_0 == ys).sum() - (pred_n == ys).sum())  # items the names get wrong
        seen.add(min(max(lost, 0), 2))
        assert score(model, xs, ys, xs[:2], 3, names).used_names == (lost <= 1)
    assert seen == {0, 1, 2}  # every side of the rule was exercised


def test_saving_again_leaves_no_earlier_projection_and_never_over_another_kind(tmp_path):
    from metarec_core.errors import ValidationError

    folder = tmp_path / "m"
    CategoryModel(CategoryConfig(encoder="fake"), np.eye(8, dtype=np.float32), 10.0, "").save(
        folder
    )
    assert CategoryModel.load(folder).matrix is not None
    CategoryModel(CategoryConfig(encoder="fake"), None, 10.0, "").save(folder)  # encoder space
    assert CategoryModel.load(folder).matrix is None
    coldstart = tmp_path / "cs"
    coldstart.mkdir()
    (coldstart / "config.json").write_text('{"format": "metarec-coldstart/3"}')
    with pytest.raises(ValidationError, match="another kind of model"):
        CategoryModel(CategoryConfig(encoder="fake"), None, 10.0, "").save(coldstart)
    assert [p.name for p in coldstart.iterdir()] == ["config.json"]
