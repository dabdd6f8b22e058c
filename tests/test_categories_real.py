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
def test_one_shot_classify_is_deterministic_and_leaves_the_encoder_alone(tmp_path):
    from metarec_core.categories import classify
    from metarec_core.embed.encoder import get_encoder

    support = pd.DataFrame(ONE_SHOT, columns=["item_id", "title", "category"])
    query = pd.DataFrame(QUERY, columns=["item_id", "title"])
    enc = get_encoder("minilm")
    before = enc.encode(["Organic Bananas"])
    first = classify(support, query, cache_dir=tmp_path)
    second = classify(support, query, cache_dir=tmp_path)
    pd.testing.assert_frame_equal(first.predictions, second.predictions)
    pred = dict(zip(first.predictions["item_id"], first.predictions["category"], strict=True))
    assert pred["q1"] == "fresh fruits"
    assert pred["q2"] == "milk"
    np.testing.assert_array_equal(enc.encode(["Organic Bananas"]), before)


@pytest.mark.slow
def test_one_shot_names_that_mislead_are_not_used(tmp_path):
    """At 1 shot the names are used only when they recognise their own examples."""
    from metarec_core.categories import classify

    wrong = {"fresh fruits": "soap", "milk": "chips pretzels", "chips pretzels": "milk"}
    wrong["soap"] = "fresh fruits"
    rows = [(i, t, wrong[c]) for i, t, c in ONE_SHOT]
    support = pd.DataFrame(rows, columns=["item_id", "title", "category"])
    query = pd.DataFrame(QUERY, columns=["item_id", "title"])
    res = classify(support, query, cache_dir=tmp_path)
    assert not res.used_names
    right = classify(pd.DataFrame(ONE_SHOT, columns=["item_id", "title", "category"]), query,
                     cache_dir=tmp_path)  # fmt: skip
    assert right.used_names
