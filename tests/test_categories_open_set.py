"""The open set's precision/recall setting: a threshold shift moves the engine's threshold and
changes which products are accepted (fake encoder, tiny data)."""

from __future__ import annotations

import pandas as pd
import pytest

from metarec_core.categories import classify
from metarec_core.embed.encoder import FakeEncoder

FRUIT = ["fresh banana bunch", "red apple bag", "ripe mango", "green pear", "navel orange"]
OTHERS = [
    "whole milk gallon",
    "greek yogurt plain",
    "lavender hand soap",
    "body wash citrus",
    "claw hammer steel",
    "cordless drill",
    "paperback novel",
    "salted butter",
]


def _run(shift: float, tmp_path):
    support = pd.DataFrame(
        {"item_id": [f"s{i}" for i in range(3)], "title": FRUIT[:3], "category": "fruit"}
    )
    titles = [*FRUIT[3:], "banana chips", "apple juice", *OTHERS]
    query = pd.DataFrame({"item_id": [f"q{i}" for i in range(len(titles))], "title": titles})
    return classify(
        support, query, open_set=True, encoder=FakeEncoder(), cache_dir=tmp_path,
        threshold_shift=shift,
    )  # fmt: skip


def test_a_higher_threshold_accepts_a_subset(tmp_path):
    base, strict, loose = (_run(s, tmp_path) for s in (0.0, 0.2, -0.2))
    assert strict.threshold - base.threshold == pytest.approx(0.2)
    assert base.threshold - loose.threshold == pytest.approx(0.2)
    accepted = {
        name: set(r.predictions.loc[r.predictions["category"].notna(), "item_id"])
        for name, r in (("base", base), ("strict", strict), ("loose", loose))
    }
    assert accepted["strict"] <= accepted["base"] <= accepted["loose"]
    assert len(accepted["strict"]) < len(accepted["loose"])


def test_the_shift_means_nothing_in_a_closed_set(tmp_path):
    support = pd.DataFrame(
        {"item_id": ["a", "b", "c", "d"], "title": FRUIT[:2] + OTHERS[:2], "category": list("ffdd")}
    )
    query = pd.DataFrame({"item_id": ["q"], "title": ["ripe mango"]})
    a = classify(support, query, encoder=FakeEncoder(), cache_dir=tmp_path)
    b = classify(support, query, encoder=FakeEncoder(), cache_dir=tmp_path, threshold_shift=0.3)
    assert a.threshold is None and b.threshold is None
    pd.testing.assert_frame_equal(a.predictions, b.predictions)


def test_f1_threshold_separates_a_small_category_from_many_foreign_products():
    import numpy as np

    from metarec_core.categories.engine import f1_threshold

    rng = np.random.default_rng(0)
    foreign, inside = rng.normal(0.0, 0.1, 2000), rng.normal(0.5, 0.06, 40)
    best = np.concatenate([foreign, inside])
    t = f1_threshold(best, rng.normal(0.5, 0.06, 5))
    accepted = best >= t
    tp = accepted[2000:].sum()
    precision, recall = tp / accepted.sum(), tp / 40
    assert 0.25 < t < 0.45 and precision > 0.9 and recall > 0.9
