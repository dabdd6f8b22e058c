"""The closed-form baselines the cold-start engine builds on, against dense numpy references."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from metarec_core.coldstart import baselines as bl


def _interactions(seed: int = 0, users: int = 200, items: int = 60) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((users, items)) < 0.15).astype(np.float32)
    return sp.csr_matrix(dense)


def test_ease_inverse_matches_the_dense_inverse():
    x = _interactions()
    subset = np.arange(x.shape[1])
    p = bl.ease_inverse(x, subset, lam=5.0)
    gram = (x.T @ x).toarray().astype(np.float64) + 5.0 * np.eye(x.shape[1])
    np.testing.assert_allclose(p, np.linalg.inv(gram), rtol=1e-4, atol=1e-6)
    assert np.array_equal(p, p.T)


def test_mirroring_in_blocks_gives_a_symmetric_matrix():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(37, 37)).astype(np.float32)
    sym = a + a.T
    lower = np.tril(sym).copy()
    bl._mirror_lower(lower, block=5)
    assert np.array_equal(lower, sym)


def test_ease_table_keeps_the_strongest_positive_weights_without_self():
    x = _interactions(seed=2)
    subset = np.arange(x.shape[1])
    p = bl.ease_inverse(x, subset, lam=5.0)
    table = bl.ease_table(p, subset, x.shape[1], n=5)
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    for item in range(x.shape[1]):
        kept = table.idx[item][table.idx[item] >= 0]
        assert item not in kept
        assert (table.val[item][: len(kept)] > 0).all()
        best = np.sort(b[item][b[item] > 0])[::-1][: len(kept)]
        np.testing.assert_allclose(np.sort(table.val[item][: len(kept)])[::-1], best, rtol=1e-4)


def test_ease_inverse_with_few_users_matches_the_direct_inverse():
    import numpy as np
    import scipy.sparse as sp

    from metarec_core.coldstart import baselines as bl

    x = sp.random(40, 400, density=0.02, random_state=1, format="csr", dtype=np.float32)
    x.data[:] = 1.0
    subset = np.flatnonzero(np.asarray(x.sum(0)).ravel() > 0)
    assert len(subset) // 2 > 40  # the few-users path
    xs = x[:, subset].toarray().astype(np.float64)
    expected = np.linalg.inv(xs.T @ xs + 50.0 * np.eye(len(subset)))
    got = bl.ease_inverse(x, subset, 50.0)
    assert np.allclose(got, expected, atol=1e-6)
