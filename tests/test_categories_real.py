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
