"""UMAP projection (cache, placement) and the Plotly figure builders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from metarec_core.types import ProgressEvent
from metarec_core.viz import figures as fig
from metarec_core.viz.projection import ProjectionParams, project, projection_key


def _clusters(n: int = 120, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim)) * 5
    labels = np.arange(n) % 3
    return centres[labels] + rng.normal(size=(n, dim)), labels


@pytest.mark.slow
def test_projection_separates_clusters_and_is_cached(tmp_path):
    x, labels = _clusters()
    ids = np.arange(len(x))
    events: list[ProgressEvent] = []
    first = project(ids, x, ProjectionParams(n_neighbors=10), tmp_path, events.append)
    assert first.coords.shape == (len(x), 2) and not first.cached
    assert events and events[-1].fraction == 1.0
    # points sit closer to their own cluster's centre than to the others'
    centres = np.stack([first.coords[labels == c].mean(0) for c in range(3)])
    d = np.linalg.norm(first.coords[:, None, :] - centres[None], axis=2)
    assert (d.argmin(1) == labels).mean() > 0.9
    second = project(ids, x, ProjectionParams(n_neighbors=10), tmp_path)
    assert second.cached and np.array_equal(first.coords, second.coords)
    assert len(list(tmp_path.glob("*.npz"))) == 1


def test_projection_key_changes_with_inputs():
    x, _ = _clusters(20)
    p = ProjectionParams()
    assert projection_key(np.arange(20), x, p) != projection_key(np.arange(20), x + 1e-3, p)
    assert projection_key(np.arange(20), x, p) != projection_key(
        np.arange(20), x, ProjectionParams(n_neighbors=5)
    )


@pytest.mark.slow
def test_place_puts_a_vector_near_its_neighbours(tmp_path):
    x, labels = _clusters()
    proj = project(np.arange(len(x)), x, ProjectionParams(n_neighbors=10), tmp_path)
    probe = x[labels == 1].mean(0, keepdims=True)
    xy = proj.place(probe, x)
    centre = proj.coords[labels == 1].mean(0)
    others = [proj.coords[labels == c].mean(0) for c in (0, 2)]
    assert np.linalg.norm(xy[0] - centre) < min(np.linalg.norm(xy[0] - o) for o in others)
    assert proj.centroid_of(["0", "3"]) is not None and proj.centroid_of(["nope"]) is None


def test_tiny_inputs_fall_back_to_pca():
    proj = project(["a", "b", "c"], np.eye(3, 8))
    assert proj.coords.shape == (3, 2)


def test_params_validate():
    with pytest.raises(ValueError):
        ProjectionParams(n_neighbors=1)


def test_figure_builders_return_figures():
    per_user = pd.Series([1, 2, 3, 5, 8, 13, 40])
    mix = pd.DataFrame({"category": ["a", "b"], "n": [3, 5], "share": [0.4, 0.6]})
    figs = [
        fig.activity_histogram(per_user, 5),
        fig.category_bar(mix),
        fig.activity_over_time(pd.DataFrame({"t": [1, 2], "n": [3, 4]}), "t"),
        fig.loss_curve([1.0, 0.5, 0.25]),
        fig.loss_curve({"a": [1, 0.5], "b": []}),
        fig.mix_before_after(mix, mix.assign(share=[0.9, 0.1])),
        fig.metric_bars(pd.DataFrame({"metric": ["HR@10"], "before": [0.1], "after": [0.2]})),
        fig.gains_distribution(pd.DataFrame({"method": ["x", "y"], "ndcg@10": [0.1, 0.2]})),
        fig.gain_histogram(pd.Series([0.1, -0.1, 0.0]), "NDCG@10 gain"),
        fig.confusion_heatmap(pd.DataFrame([[3, 1], [0, 4]], index=["a", "b"], columns=["a", "b"])),
        fig.confidence_histogram(
            pd.DataFrame({"category": ["a", None], "confidence": [0.9, 0.2]}), 0.5
        ),
        fig.eval_chart(pd.DataFrame({"method": ["x", "y"], "k": [3, 3], "ndcg@10": [0.1, 0.2]})),
        fig.embedding_map(
            pd.DataFrame(
                {
                    "x": [0, 1],
                    "y": [0, 1],
                    "item_id": ["1", "2"],
                    "title": ["t", "u"],
                    "category": ["a", None],
                }
            ),
            pd.DataFrame({"x": [0.5], "y": [0.5], "label": ["a"], "kind": ["prototype"]}),
        ),
        fig.empty_figure("nothing"),
    ]
    assert all(isinstance(f, go.Figure) for f in figs)
    assert fig.result_chart(pd.DataFrame({"a": ["x", "y"], "n": [1, 2]})) is not None
    assert fig.result_chart(pd.DataFrame({"a": ["x"]})) is None
    # the map's item traces carry the ids the selection hand-off needs
    m = figs[-2]
    assert m.data[0].customdata[0][0] in ("1", "2")
