"""Word features of a task's titles, joined to the encoder's space: TF-IDF of word 1-2 grams,
fitted on the task's own titles and hashed to a few hundred dimensions (each term to one
dimension and sign given by its hash, which keeps dot products on average). Words a small
encoder blurs, such as brand and product-line names, then count beside the encoder's meaning."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from metarec_core.categories.protonet import l2n

MIN_SHARING = 0.5  # fewer titles sharing a word with another: the words say nothing
HASH_BITS = 20  # terms hashed to 2^20 columns first: collisions among a task's terms are rare


def word_features(texts: Sequence[str], dims: int) -> np.ndarray | None:
    """(N, dims) hashed TF-IDF rows of ``texts``, or None when fewer than MIN_SHARING of them
    share a word with another (no words, or a script written without spaces)."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer

    counts = HashingVectorizer(
        ngram_range=(1, 2), n_features=1 << HASH_BITS, alternate_sign=False, norm=None
    ).transform(list(texts))
    if counts.nnz == 0:  # no title has a word
        return None
    x = TfidfTransformer(sublinear_tf=True).fit_transform(counts).tocsr()
    cols = x.indices
    shared = np.bincount(cols, minlength=x.shape[1])[cols] >= 2  # terms in two titles or more
    rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    if (np.bincount(rows[shared], minlength=x.shape[0]) > 0).mean() < MIN_SHARING:
        return None  # e.g. unspaced Chinese
    # a term's column picks its dimension (column mod dims) and sign (parity of column // dims)
    signs = np.where((cols // dims) % 2 == 1, 1.0, -1.0).astype(np.float32)
    folded = sp.csr_matrix((x.data * signs, cols % dims, x.indptr), shape=(x.shape[0], dims))
    return np.asarray(folded.toarray(), dtype=np.float32)


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
