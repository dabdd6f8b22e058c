"""The exact neighbour search behind the propagation graph (categories/neighbours.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metarec_core.categories import neighbours
from metarec_core.categories.neighbours import nearest
from metarec_core.categories.protonet import knn_graph, l2n


@pytest.fixture(params=[torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def search_in(request, monkeypatch):
    """The CPU search in float32 and, as on CPUs with bfloat16 units, in bfloat16."""
    monkeypatch.setattr(neighbours, "search_dtype", lambda: request.param)
    return request.param


def _k_largest(sims: np.ndarray, k: int) -> np.ndarray:
    """(N, k) the k largest similarities of each row to the other rows, ascending."""
    sims = sims.copy()
    np.fill_diagonal(sims, -np.inf)
    return np.sort(-np.sort(-sims, axis=1)[:, :k], axis=1)


@pytest.mark.parametrize(
    ("n", "k", "rows", "cols"),
    [(50, 5, 16, 16), (37, 10, 8, 64), (12, 11, 5, 3), (2, 1, 1, 1), (300, 7, 64, 100)],
)
def test_strip_search_finds_the_exact_nearest(n, k, rows, cols, search_in):
    """Only strips on and above the diagonal are multiplied and scanned in threads; every row
    must still get its exact k nearest other rows, whatever the strip and block sizes (last
    ones partial, smaller than k) and whether bfloat16 candidates are re-ranked."""
    z = l2n(np.random.default_rng(n).normal(size=(n, 6))).astype(np.float32)
    sims = z @ z.T
    got, val = nearest(z, k, rows, cols)
    assert got.shape == val.shape == (n, k)
    assert (got != np.arange(n)[:, None]).all()  # never its own neighbour
    assert all(len(set(row)) == k for row in got)  # k distinct neighbours
    found = np.sort(np.take_along_axis(sims, got, 1), axis=1)
    np.testing.assert_allclose(found, _k_largest(sims, k), atol=1e-6)
    np.testing.assert_allclose(val, np.take_along_axis(sims, got, 1), atol=1e-6)  # their values


def _clustered(n: int = 3000, dims: int = 32) -> np.ndarray:
    """Unit rows around 30 centres: many near-ties, similarities mostly above 0.8."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(30, dims))
    return l2n(centres[rng.integers(0, 30, n)] + 0.3 * rng.normal(size=(n, dims))).astype(
        np.float32
    )


def test_search_in_default_strips_matches_brute_force_on_a_catalogue_sized_input(monkeypatch):
    """3,000 clustered rows at the shipped strip sizes, in float32: exact."""
    monkeypatch.setattr(neighbours, "search_dtype", lambda: torch.float32)
    z = _clustered()
    got, _ = nearest(z, 10)
    found = np.sort(np.take_along_axis(z @ z.T, got, 1), axis=1)
    np.testing.assert_allclose(found, _k_largest(z @ z.T, 10), atol=1e-6)


def test_bfloat16_candidates_re_ranked_in_float32_are_nearly_exact(monkeypatch):
    """In bfloat16 the similarities round to 1/256 near 1. Among these near-ties, the spare
    candidates re-ranked in float32 lose far fewer exact neighbours than a search without
    spares, any swapped one is within that rounding of the one it replaced, and the values
    returned are float32's."""
    monkeypatch.setattr(neighbours, "search_dtype", lambda: torch.bfloat16)
    z = _clustered()
    sims = z @ z.T
    want = _k_largest(sims, 10)

    def off(spare: int) -> np.ndarray:
        """(N,) each row's largest gap between the exact k nearest and those found"""
        monkeypatch.setattr(neighbours, "BF16_SPARE", spare)
        got, val = nearest(z, 10)
        np.testing.assert_allclose(val, np.take_along_axis(sims, got, 1), atol=1e-6)
        return np.abs(np.sort(np.take_along_axis(sims, got, 1), axis=1) - want).max(1)

    spare = neighbours.BF16_SPARE
    without, shipped = off(0), off(spare)
    assert shipped.max() < 1 / 256
    assert (shipped > 1e-6).mean() < 0.05
    assert (shipped > 1e-6).mean() < (without > 1e-6).mean() / 4


def test_graph_is_symmetric_with_edges_only_between_neighbours():
    n, k = 40, 4
    z = l2n(np.random.default_rng(1).normal(size=(n, 5))).astype(np.float32)
    got, _ = nearest(z, k)
    graph = knn_graph(z, k).toarray()
    np.testing.assert_allclose(graph, graph.T, atol=1e-6)
    edges = np.zeros((n, n), bool)
    edges[np.repeat(np.arange(n), k), got.ravel()] = True
    edges |= edges.T
    assert ((graph > 0) <= edges).all()
    assert (graph[edges] >= 0).all()


def test_neighbour_search_stays_float32_on_cpus_without_bfloat16(monkeypatch):
    """Emulated bfloat16 is ~100x slower than float32 (3.1 s against 0.03 s on an AVX2 CPU), so
    it is only considered where the CPU has bfloat16 instructions."""
    from metarec_core import device

    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    device.cpu_bf16_faster.cache_clear()
    try:
        assert neighbours.search_dtype() == torch.float32
    finally:
        device.cpu_bf16_faster.cache_clear()


def test_block_search_with_torch_matches_brute_force():
    """The GPU's search (blocks of rows against all rows, torch.topk) run on the CPU, with
    blocks that leave a partial last one: the same exact neighbours and float32 values."""
    rng = np.random.default_rng(3)
    z = l2n(rng.normal(size=(700, 24))).astype(np.float32)
    sims = z @ z.T
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(neighbours, "GPU_BLOCK_BYTES", 4 * 700 * 96)  # 96 rows a block: 8 blocks
        got, val = neighbours.nearest_on(z, 9, torch.device("cpu"))
    assert (got != np.arange(700)[:, None]).all()
    found = np.sort(np.take_along_axis(sims, got, 1), axis=1)
    np.testing.assert_allclose(found, _k_largest(sims, 9), atol=1e-6)
    np.testing.assert_allclose(val, np.take_along_axis(sims, got, 1), atol=1e-6)


def test_exact_values_equal_the_gathered_products():
    rng = np.random.default_rng(4)
    z = rng.normal(size=(50, 300)).astype(np.float32)
    idx = rng.integers(0, 50, size=(50, 3))
    got = neighbours.exact_values(z, idx)
    want = np.einsum("nd,nkd->nk", z.astype(np.float64), z[idx].astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    assert neighbours.exact_values(z, idx[:, :0]).shape == (50, 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_search_on_a_gpu_matches_the_cpu_search():
    rng = np.random.default_rng(5)
    z = l2n(rng.normal(size=(3000, 64))).astype(np.float32)
    cpu, _ = nearest(z, 10)
    gpu, val = nearest(z, 10, device=torch.device("cuda"))
    sims = z @ z.T
    np.testing.assert_allclose(
        np.sort(np.take_along_axis(sims, gpu, 1), 1),
        np.sort(np.take_along_axis(sims, cpu, 1), 1),
        atol=1e-5,
    )
    np.testing.assert_allclose(val, np.take_along_axis(sims, gpu, 1), atol=1e-6)


def test_a_stored_gpu_setting_runs_on_the_cpu_without_one():
    from metarec_core.device import available_device

    assert available_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert available_device("auto").type == expected
    assert available_device("cuda:7").type == ("cuda" if torch.cuda.device_count() > 7 else "cpu")
