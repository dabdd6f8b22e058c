"""Real-encoder checks (slow): MiniLM puts "organic bananas" in the fruit category; CUDA path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

SUPPORT = [
    ("f1", "Fresh Gala Apples", "fresh fruits"),
    ("f2", "Seedless Red Grapes", "fresh fruits"),
    ("f3", "Navel Oranges", "fresh fruits"),
    ("d1", "Whole Milk Gallon", "milk"),
    ("d2", "2% Reduced Fat Milk", "milk"),
    ("c1", "Sea Salt Potato Chips", "chips pretzels"),
    ("c2", "Tortilla Chips Restaurant Style", "chips pretzels"),
    ("s1", "Lavender Hand Soap", "soap"),
    ("s2", "Moisturizing Body Wash", "soap"),
]
QUERY = [("q1", "Organic Bananas"), ("q2", "Organic Skim Milk"), ("q3", "Pretzel Twists")]


@pytest.mark.slow
def test_organic_bananas_land_in_fruit(tmp_path):
    from metarec_core.categories import CategoryModel, classify

    support = pd.DataFrame(SUPPORT, columns=["item_id", "title", "category"])
    query = pd.DataFrame(QUERY, columns=["item_id", "title"])
    res = classify(support, query, cache_dir=tmp_path)
    pred = dict(zip(res.predictions["item_id"], res.predictions["category"], strict=True))
    assert pred["q1"] == "fresh fruits"
    assert pred["q2"] == "milk"
    assert res.model_used.startswith("encoder prototypes without meta-training")
    plain = classify(support, query, CategoryModel.plain(), cache_dir=tmp_path)
    assert plain.predictions["category"].iloc[0] == "fresh fruits"


FOREIGN = [
    "Sea Salt Potato Chips", "Lavender Hand Soap", "Whole Milk Gallon", "Spaghetti Pasta",
    "Dry Dog Food Chicken", "Laundry Detergent Free Clear", "Paper Towels", "Greek Yogurt Plain",
    "Sparkling Water Lime", "Dark Roast Coffee Beans", "Frozen Cheese Pizza", "Chicken Breast",
    "Cheddar Cheese Block", "Toothpaste Mint", "Peanut Butter Creamy", "Tortilla Chips",
    "Black Beans Can", "Olive Oil Extra Virgin", "Ice Cream Vanilla", "Trash Bags Large",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("k", [1, 3])
def test_one_new_category_finds_its_products_among_others(tmp_path, k):
    from metarec_core.categories import classify

    support = pd.DataFrame(SUPPORT[:k], columns=["item_id", "title", "category"])
    fruit = ["Organic Bananas", "Fresh Strawberries", "Ripe Mango", "Bartlett Pears"]
    titles = fruit + FOREIGN * 3  # a catalogue is mostly other products
    query = pd.DataFrame({"item_id": [f"q{i}" for i in range(len(titles))], "title": titles})
    res = classify(support, query, open_set=True, cache_dir=tmp_path)
    pred = res.predictions["category"].to_numpy()
    assert (pred[: len(fruit)] == "fresh fruits").mean() >= 0.75
    assert pd.isna(pred[len(fruit) :]).mean() >= 0.9


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_meta_training_runs_on_cuda():
    from metarec_core.categories.config import CategoryConfig
    from metarec_core.categories.metatrain import meta_train

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 32)).astype(np.float32)
    y = np.repeat(np.arange(10), 30)
    proj, hist = meta_train(x, y, None, CategoryConfig(episodes=5, device="cuda", rank=4))
    assert next(proj.parameters()).device.type == "cpu"
    assert np.isfinite(hist["final_loss"])


ONE_SHOT = [
    ("f1", "Fresh Gala Apples", "fresh fruits"),
    ("d1", "Whole Milk Gallon", "milk"),
    ("c1", "Sea Salt Potato Chips", "chips pretzels"),
    ("s1", "Lavender Hand Soap", "soap"),
]


@pytest.mark.slow
def test_support_tuning_with_zero_steps_reproduces_the_encoder():
    """The frozen-lower / tuned-top split embeds exactly like the encoder when nothing is tuned."""
    from metarec_core.embed.encoder import get_encoder
    from metarec_core.embed.support_tuning import TuningSettings, tune_and_embed

    enc = get_encoder("minilm")
    support = [t for _, t, _ in ONE_SHOT]
    names = ["fresh fruits", "milk", "chips pretzels", "soap"]
    queries = [t for _, t in QUERY]
    labels = np.arange(4)
    before, after = tune_and_embed(enc, support, labels, names, queries, TuningSettings(steps=0))
    for got in (before, after):
        np.testing.assert_allclose(got[0], enc.encode(support), atol=1e-5)
        np.testing.assert_allclose(got[1], enc.encode(queries), atol=1e-5)
        np.testing.assert_allclose(got[2], enc.encode(names), atol=1e-5)
    before, after = tune_and_embed(enc, support, labels, names, queries, TuningSettings(steps=5))
    np.testing.assert_allclose(before[1], enc.encode(queries), atol=1e-5)
    assert np.abs(after[1] - before[1]).max() > 1e-3  # the tuned copy moved


@pytest.mark.slow
def test_one_shot_classify_is_support_tuned_deterministic_and_leaves_the_encoder_alone(tmp_path):
    from metarec_core.categories import CategoryConfig, CategoryModel, classify
    from metarec_core.categories.config import SUPPORT_TUNING_STEPS
    from metarec_core.embed.encoder import get_encoder

    support = pd.DataFrame(ONE_SHOT, columns=["item_id", "title", "category"])
    query = pd.DataFrame(QUERY, columns=["item_id", "title"])
    enc = get_encoder("minilm")
    before = enc.encode(["Organic Bananas"])
    on = CategoryModel.untrained(CategoryConfig(tune_steps=SUPPORT_TUNING_STEPS))
    first = classify(support, query, on, cache_dir=tmp_path)
    second = classify(support, query, on, cache_dir=tmp_path)
    assert first.tuned and second.tuned
    pd.testing.assert_frame_equal(first.predictions, second.predictions)
    pred = dict(zip(first.predictions["item_id"], first.predictions["category"], strict=True))
    assert pred["q1"] == "fresh fruits"
    assert pred["q2"] == "milk"
    np.testing.assert_array_equal(enc.encode(["Organic Bananas"]), before)
    # leave-one-out and the open-set threshold are judged in the untuned space: the tuning fits
    # the support's leave-one-out, so measuring it afterwards would flatter it
    closed = classify(support, query, cache_dir=tmp_path)  # the default: support tuning off
    assert not closed.tuned
    assert first.leave_one_out == closed.leave_one_out
    tuned_open = classify(support, query, on, open_set=True, cache_dir=tmp_path)
    plain_open = classify(support, query, open_set=True, cache_dir=tmp_path)
    assert tuned_open.tuned
    assert tuned_open.threshold == pytest.approx(plain_open.threshold, abs=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_support_tuning_runs_on_cuda():
    from metarec_core.embed.encoder import MiniLMEncoder
    from metarec_core.embed.support_tuning import tune_and_embed

    enc = MiniLMEncoder(device="cuda")
    _, (xs, xq, xn) = tune_and_embed(
        enc, ["Gala Apples", "Whole Milk"], np.arange(2), ["fruit", "milk"], ["Bananas"]
    )
    assert xs.shape == (2, 384) and xq.shape == (1, 384) and np.isfinite(xn).all()


@pytest.mark.slow
def test_one_shot_support_is_not_tuned_when_the_names_do_not_describe_it(tmp_path):
    """Each example is tuned towards its category's name: names that say nothing, or mislead,
    would pull it the wrong way, so such a task is scored untuned."""
    from metarec_core.categories import CategoryConfig, CategoryModel, classify
    from metarec_core.categories.config import SUPPORT_TUNING_STEPS

    wrong = {"fresh fruits": "soap", "milk": "chips pretzels", "chips pretzels": "milk"}
    wrong["soap"] = "fresh fruits"
    rows = [(i, t, wrong[c]) for i, t, c in ONE_SHOT]
    support = pd.DataFrame(rows, columns=["item_id", "title", "category"])
    query = pd.DataFrame(QUERY, columns=["item_id", "title"])
    on = CategoryModel.untrained(CategoryConfig(tune_steps=SUPPORT_TUNING_STEPS))
    res = classify(support, query, on, cache_dir=tmp_path)
    assert not res.used_names and not res.tuned and res.names_undescriptive
    untuned = classify(support, query, cache_dir=tmp_path)  # the default: support tuning off
    pd.testing.assert_frame_equal(res.predictions, untuned.predictions, atol=1e-5)
