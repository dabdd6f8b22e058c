"""One cold-start protocol: the app's training, the Lab and the CLI/benchmark evaluation agree."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_coldstart_engine import TINY, tiny_frames

from metarec_core import services
from metarec_core.coldstart.train import train_model
from metarec_core.embed.encoder import FakeEncoder
from metarec_core.evaluate.coldstart_eval import evaluate_model
from metarec_core.evaluate.protocol import split_users
from metarec_core.jobs import JobSpec, TrainTask

METHODS = ["adapted", "popularity", "ease"]


@pytest.fixture(scope="module")
def trained():
    inter, items = tiny_frames(n_users=120)
    warm, cold = split_users(inter, seed=0)
    model = train_model(inter[inter.user_id.isin(set(warm))], items, TINY, encoder=FakeEncoder())
    return model, inter, cold


@pytest.mark.slow
def test_the_lab_table_the_cohort_view_and_the_protocol_score_alike(trained):
    model, inter, cold = trained
    rows = pd.DataFrame(evaluate_model(model, inter, cold, [1, 3], METHODS)).set_index(
        ["method", "k"]
    )
    cold_frame = inter[inter.user_id.isin(set(cold))]
    lab = services.evaluate_model(model, cold_frame, ks=(1, 3), methods=METHODS)
    lab = lab.set_index(["method", "k"])
    for metric in ("hr@10", "ndcg@10", "recall@20", "coverage@10", "n_users"):
        pd.testing.assert_series_equal(lab[metric], rows[metric])
    assert (lab["ndcg@10_lo"] <= lab["ndcg@10"]).all() and (
        lab["ndcg@10"] <= lab["ndcg@10_hi"]
    ).all()
    per = services.per_user_metrics(model, inter, 3, METHODS, users=list(cold))
    assert list(per.columns) == ["user_id", "method", "hr@10", "ndcg@10", "recall@20"]
    means = per.groupby("method")[["hr@10", "ndcg@10", "recall@20"]].mean()
    for method in METHODS:
        for metric in ("hr@10", "ndcg@10", "recall@20"):
            assert means.loc[method, metric] == pytest.approx(rows.loc[(method, 3), metric])


@pytest.mark.slow
def test_app_training_holds_out_the_protocols_cold_users(tmp_path):
    inter, items = tiny_frames(n_users=60)
    config = {k: getattr(TINY, k) for k in ("epochs", "min_steps", "batch_size", "dim", "k_max")}
    spec = JobSpec("tiny", (TrainTask("coldstart", "m", config),), device="cpu", encoder="fake")
    evaluate = services.train_coldstart(
        spec, spec.tasks[0], {"interactions": inter, "items": items}, tmp_path, lambda e: None
    )
    assert not (tmp_path / "evaluation.json").exists()  # the model is usable before it is scored
    evaluate(tmp_path)
    cold = json.loads((tmp_path / services.COLD_USERS_FILE).read_text())
    assert cold == [str(u) for u in split_users(inter, seed=0)[1]]
    table = pd.DataFrame(json.loads((tmp_path / "evaluation.json").read_text())["rows"])
    assert set(table["k"]) <= set(services.EVAL_KS) and 1 in set(table["k"])
    assert (table["n_users"] <= len(cold)).all() and set(table["method"]) >= {"adapted", "ease"}
    assert services.COLD_FRACTION == 0.1 and services.MAX_COLD == 2000
