"""Word features of a task's titles, joined to the encoder's space: TF-IDF of word 1-2 grams,
fitted on the task's own titles and hashed to a few hundred dimensions (each term to one seeded
dimension and sign, which keeps dot products on average). Words a small encoder blurs, such as
brand and product-line names, then count beside the encoder's meaning."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from metarec_core.categories.protonet import l2n

MIN_SHARING = 0.5  # fewer titles sharing a word with another: the words say nothing


def word_features(texts: Sequence[str], dims: int, seed: int = 0) -> np.ndarray | None:
    """(N, dims) hashed TF-IDF rows of ``texts``, or None when fewer than MIN_SHARING of them
    share a word with another (no words, or a script written without spaces)."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfVectorizer

    try:
        x = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(list(texts))
    except ValueError:  # empty vocabulary: no title has a word
        return None
    shared = np.asarray((x > 0).sum(0)).ravel() >= 2  # (V,) terms in two titles or more
    if (x[:, shared].getnnz(axis=1) > 0).mean() < MIN_SHARING:  # e.g. unspaced Chinese
        return None
    rng = np.random.default_rng(seed)
    n_terms = x.shape[1]  # each term adds its weight, with a random sign, to one of ``dims``
    signs = rng.choice(np.array([-1.0, 1.0], np.float32), n_terms)
    proj = sp.csr_matrix((signs, (np.arange(n_terms), rng.integers(0, dims, n_terms))),
                         shape=(n_terms, dims))  # fmt: skip
    return np.asarray((x @ proj).toarray(), dtype=np.float32)


def with_words(
    zs: np.ndarray,
    zq: np.ndarray,
    z_names: np.ndarray | None,
    texts: Sequence[str],
    weight: float,
    dims: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Support (S, D), queries (Q, D) and names (C, D) in the encoder's space, each row joined to
    ``weight`` x its centred word features (``texts``: the S support then the Q query titles;
    names get none) and normalised: (S, D + dims), (Q, D + dims), (C, D + dims)."""
    w = word_features(texts, dims) if weight > 0 else None
    if w is None:
        return zs, zq, z_names
    w = weight * (w - w.mean(0, keepdims=True))
    s = len(zs)
    zs = l2n(np.concatenate([zs, w[:s]], 1))
    zq = l2n(np.concatenate([zq, w[s:]], 1))
    if z_names is not None:
        z_names = np.concatenate([z_names, np.zeros((len(z_names), dims), np.float32)], 1)
    return zs, zq, z_names
