"""Word features of a task's titles, joined to the encoder's space: TF-IDF of word 1-2 grams,
fitted on the task's own titles and hashed to a few hundred dimensions (each term to one
dimension and sign given by its hash, which keeps dot products on average). Words a small
encoder blurs, such as brand and product-line names, then count beside the encoder's meaning.
Arrow's compiled kernels split the titles: ten thousand titles take about 0.1 s."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from metarec_core.categories.protonet import l2n

MIN_SHARING = 0.5  # fewer titles sharing a word with another: the words say nothing
NOT_WORD = r"[^\p{L}\p{N}_]+"  # what separates words: anything but letters, digits and "_"


def _terms(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every word (2+ letters, lower case) and pair of adjacent words of ``texts``: the title
    of each occurrence (T,), its term's index (T,), and the distinct terms."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = pc.split_pattern_regex(pc.utf8_lower(pa.array(texts, pa.string())), NOT_WORD)
    words, rows = pc.list_flatten(parts), pc.list_parent_indices(parts)
    keep = pc.greater_equal(pc.utf8_length(words), 2)
    words, rows = words.filter(keep), rows.filter(keep).to_numpy()
    same = rows[1:] == rows[:-1]  # adjacent words of one title make a pair
    pairs = pc.binary_join_element_wise(words[:-1], words[1:], " ").filter(pa.array(same))
    terms = pc.dictionary_encode(pa.concat_arrays([words, pairs]))
    index = terms.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return np.concatenate([rows, rows[:-1][same]]), index, terms.dictionary.to_pylist()


def tfidf_cells(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """TF-IDF of the word 1-2 grams of ``texts`` as scikit-learn's TfidfVectorizer(ngram_range=
    (1, 2), sublinear_tf=True) computes it (sublinear counts, smoothed IDF, unit rows): each
    nonzero cell's title (T,), term (T,) and value (T,), and the distinct terms."""
    n = len(texts)
    rows, terms, vocabulary = _terms([str(t) for t in texts])
    if len(terms) == 0:
        return rows, terms, np.zeros(0), vocabulary
    # (title, term) once each, with its count in the title
    pair, counts = np.unique(rows * len(vocabulary) + terms, return_counts=True)
    rows, terms = pair // len(vocabulary), pair % len(vocabulary)
    df = np.bincount(terms, minlength=len(vocabulary))  # titles holding each term
    tfidf = (1.0 + np.log(counts)) * (np.log((1.0 + n) / (1.0 + df[terms])) + 1.0)
    tfidf /= np.sqrt(np.bincount(rows, tfidf**2, minlength=n))[rows]
    return rows, terms, tfidf, vocabulary


def tfidf_matrix(texts: Sequence[str]):
    """(N, terms) scipy CSR matrix of ``tfidf_cells``."""
    from scipy.sparse import csr_matrix

    rows, terms, values, vocabulary = tfidf_cells(texts)
    shape = (len(texts), max(len(vocabulary), 1))
    return csr_matrix((values.astype(np.float32), (rows, terms)), shape=shape)


def word_features(texts: Sequence[str], dims: int) -> np.ndarray | None:
    """(N, dims) hashed TF-IDF rows of ``texts`` (``tfidf_cells``), or None when fewer than
    MIN_SHARING of them share a word with another (no words, or a script written without
    spaces)."""
    import pandas as pd

    n = len(texts)
    rows, terms, tfidf, vocabulary = tfidf_cells(texts)
    if len(terms) == 0:  # no title has a word
        return None
    df = np.bincount(terms, minlength=len(vocabulary))
    if (np.bincount(rows[df[terms] >= 2], minlength=n) > 0).mean() < MIN_SHARING:
        return None  # e.g. unspaced Chinese
    # each term's hash picks its dimension (hash mod dims) and sign (parity of hash // dims)
    h = pd.util.hash_array(np.asarray(vocabulary, dtype=object))[terms]  # (T,) uint64
    signs = np.where((h // dims) % 2 == 1, 1.0, -1.0)
    cells = np.bincount(rows * dims + (h % dims).astype(np.int64), tfidf * signs, n * dims)
    return cells.reshape(n, dims).astype(np.float32)


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
