"""Ranking metrics checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metarec_core.evaluate.metrics import (
    coverage,
    hr_at_k,
    mean_ci95,
    mean_popularity,
    ndcg_at_k,
    recall_at_k,
)


def test_hr_at_k():
    assert hr_at_k(["a", "b", "c"], {"c"}, k=3) == 1.0
    assert hr_at_k(["a", "b", "c"], {"c"}, k=2) == 0.0
    assert hr_at_k([], {"c"}, k=10) == 0.0


def test_ndcg_binary_with_ideal_over_min_query_k():
    # hits at ranks 1 and 3; two relevant items -> IDCG = 1 + 1/log2(3)
    dcg = 1.0 + 1.0 / math.log2(4)
    idcg = 1.0 + 1.0 / math.log2(3)
    assert ndcg_at_k(["a", "x", "b", "y"], {"a", "b"}, k=10) == pytest.approx(dcg / idcg)
    # 12 relevant items, k = 10: ideal DCG uses 10 positions only, so a perfect list scores 1
    rel = [str(i) for i in range(12)]
    assert ndcg_at_k(rel, set(rel), k=10) == pytest.approx(1.0)
    # a single hit at rank 2 with one relevant item
    assert ndcg_at_k(["x", "a"], {"a"}, k=10) == pytest.approx(1.0 / math.log2(3))
    assert ndcg_at_k(["x"], set(), k=10) == 0.0


def test_recall_at_k():
    assert recall_at_k(["a", "b", "c"], {"a", "c", "d", "e"}, k=2) == pytest.approx(0.25)
    assert recall_at_k(["a", "b", "c"], {"a", "c", "d", "e"}, k=20) == pytest.approx(0.5)


def test_coverage_and_mean_popularity():
    lists = [["a", "b"], ["b", "c"]]
    assert coverage(lists, n_catalogue=10, k=2) == pytest.approx(0.3)
    assert coverage(lists, n_catalogue=10, k=1) == pytest.approx(0.2)
    pop = {"a": 10, "b": 2}
    assert mean_popularity(lists, pop, k=2) == pytest.approx((10 + 2 + 2 + 0) / 4)


def test_mean_ci95():
    m, h = mean_ci95([1.0, 2.0, 3.0])
    assert m == pytest.approx(2.0)
    # t(0.975, 2) = 4.302653; sd = 1; n = 3
    assert h == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert mean_ci95([0.5]) == (0.5, 0.0)


def test_protocol_split_and_support_query():
    """10% cold users (capped), support = first k in order, query = later distinct non-support."""
    import pandas as pd

    from metarec_core.evaluate.protocol import cold_tasks, split_users

    rows = [(f"u{u:03d}", f"i{(u + p) % 7}", p) for u in range(200) for p in range(4)]
    rows += [("zz", x, p) for p, x in enumerate(["a", "b", "a", "c", "b", "d"])]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "position"]).sample(
        frac=1, random_state=0
    )
    warm, cold = split_users(inter, seed=0)
    assert len(cold) == 20 and not set(warm) & set(cold) and len(warm) + len(cold) == 201
    assert list(split_users(inter, seed=0)[1]) == list(cold)
    assert list(split_users(inter, seed=1)[1]) != list(cold)
    users, supports, queries = cold_tasks(inter, ["zz", "u000"], k=2)
    assert users == ["u000", "zz"]
    assert supports[1] == ["a", "b"] and queries[1] == ["c", "d"]
    assert supports[0] == ["i0", "i1"] and queries[0] == ["i2", "i3"]


def test_paired_differences_compare_the_same_users():
    from metarec_core.evaluate.protocol import paired_differences

    rng = np.random.default_rng(0)
    base = rng.random(400)
    per_user = {
        ("adapted", 3): base + 0.01,  # a small but consistent gain on every user
        ("finetune", 3): base,
        ("popularity", 3): base + 0.02,
        ("finetune", 1): base,  # no adapted row at k=1: nothing to compare
    }
    table = paired_differences(per_user).set_index("other")
    assert set(table.index) == {"finetune", "popularity"} and set(table.k) == {3}
    gain, loss = table.loc["finetune"], table.loc["popularity"]
    assert gain["diff"] == pytest.approx(0.01) and gain["low"] > 0 and gain["wins"] == 1.0
    assert loss["diff"] == pytest.approx(-0.01) and loss["high"] < 0 and loss["losses"] == 1.0
    # seed-to-seed noise shared by both methods does not widen the paired interval
    assert gain["high"] - gain["low"] < 1e-9


def test_macro_f1_averages_the_chosen_labels():
    from metarec_core.evaluate.metrics import macro_f1

    truth = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "b", "none"]
    # a: 2/3, b: 4/5, c: 0 (its only product went to "none", which is no label)
    assert macro_f1(truth, pred) == pytest.approx((2 / 3 + 0.8 + 0) / 3)
    assert macro_f1(truth, pred, ["a", "b"]) == pytest.approx((2 / 3 + 0.8) / 2)
    assert macro_f1(truth, truth) == 1.0
    assert math.isnan(macro_f1([], [], []))
