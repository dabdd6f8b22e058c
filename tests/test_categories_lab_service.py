"""The New Category Lab's service: headline figures agree with the confusion matrix, the
threshold is drawn on the quantity it cuts, model notes (fake encoder, tiny data)."""

from __future__ import annotations

import numpy as np
import pytest
from app_support import fixture_frames

from metarec_core.services import category_lab as lab
from metarec_core.services.category_lab import NONE, OTHER


def _run(cats: tuple[str, ...] = ("Fruit",), shift: float = 0.0, open_set: bool = True):
    from metarec_core.embed.service import lazy_encoder

    _, items = fixture_frames()
    labels, query, truth = lab.category_task(items, list(cats), 3, 0, 40 if open_set else 0)
    return lab.classify_categories(
        items, labels, query, truth, None, open_set, lazy_encoder("fake"), threshold_shift=shift
    )


def _right_in_confusion(run) -> int:
    conf = run.confusion
    right = sum(int(conf.loc[c, c]) for c in run.categories if c in conf and c in conf.index)
    if OTHER in conf.index and NONE in conf:
        right += int(conf.loc[OTHER, NONE])
    return right


@pytest.mark.parametrize("cats", [("Fruit",), ("Fruit", "Tools")])
def test_open_set_figures_count_the_other_products_like_the_confusion_matrix(cats):
    from sklearn.metrics import f1_score

    for shift in (-0.15, 0.0, 0.15):
        run = _run(cats, shift)
        p = run.predictions
        assert run.accuracy == pytest.approx(_right_in_confusion(run) / run.confusion.values.sum())
        right = p["truth"].replace(OTHER, NONE)
        f1 = f1_score(right, p["predicted"], labels=run.categories, average="macro")
        assert run.macro_f1 == pytest.approx(f1)
    # at the lowest threshold products of other categories are accepted: they must count
    loose = _run(cats, -0.15).predictions
    assert (loose.loc[loose["truth"] == OTHER, "predicted"] != NONE).any()


def test_closed_set_figures_leave_out_nothing_and_keep_leave_one_out():
    run = _run(("Fruit", "Tools"), open_set=False)
    assert run.accuracy == pytest.approx(run.predictions["correct"].mean())
    labels = [label for label, _, _ in lab.headline(run)]
    assert labels[0].startswith("Leave-one-out") and "Open-set precision" not in labels


def test_leave_one_out_is_not_claimed_for_a_single_category():
    run = _run(("Fruit",))
    assert run.loo_accuracy is None
    labels = [label for label, _, _ in lab.headline(run)]
    assert not any(label.startswith("Leave-one-out") for label in labels)
    assert {"Accuracy", "Macro-F1", "Open-set precision", "Open-set recall"} <= set(labels)


@pytest.mark.parametrize("shift", [-0.15, 0.0, 0.15])
def test_the_threshold_line_is_on_the_similarity_it_cuts(shift):
    run = _run(("Fruit", "Tools"), shift)
    p = run.predictions
    # "none of these" exactly below the threshold on the histogram's axis
    assert ((p["similarity"] < run.threshold) == (p["predicted"] == NONE)).all()
    figure = lab.confidence_figure(run)
    assert figure.layout.shapes[0].x0 == pytest.approx(run.threshold)
    drawn = np.concatenate([np.asarray(t.x, dtype=float) for t in figure.data])
    assert sorted(drawn) == pytest.approx(sorted(p["similarity"]))
    assert "similarity" in figure.layout.xaxis.title.text


def test_the_run_names_its_encoder_and_the_report_shows_it():
    run = _run(("Fruit", "Tools"))
    assert run.encoder == "fake"
    assert "Encoder: fake" in lab.category_report(run, "tiny")


def test_a_model_that_kept_the_encoder_space_says_so():
    from metarec_core.categories import CategoryConfig, CategoryModel

    cfg = CategoryConfig(encoder="fake")
    dropped = CategoryModel(cfg, None, 20.0, "", {"kind": "trained", "validation": {"x": 1}})
    assert "did not beat it on held-back categories" in lab.model_note(dropped)
    kept = CategoryModel(cfg, np.eye(4, dtype=np.float32), 10.0, "", {"kind": "trained"})
    assert lab.model_note(kept) is None
    assert lab.model_note(CategoryModel.untrained(cfg)) is None
    assert lab.model_note(None) is None
