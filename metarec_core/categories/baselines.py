"""Baselines reported beside the engine: TF-IDF centroids, kNN and logistic regression.

(Plain encoder prototypes are ``CategoryModel.plain()`` through the same engine.) Each baseline
takes a support set with integer labels and returns integer predictions for the queries.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from metarec_core.categories.protonet import l2n, prototypes


def tfidf_centroid(
    support_texts: Sequence[str], ys: np.ndarray, query_texts: Sequence[str], n_classes: int
) -> np.ndarray:
    """Nearest TF-IDF centroid (word uni+bigrams and char 3-5 grams, fitted on support + queries)."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = list(support_texts) + list(query_texts)
    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(texts)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True).fit(texts)

    def vec(t: Sequence[str]):
        return hstack([words.transform(t), chars.transform(t)]).tocsr()

    s, q = vec(support_texts), vec(query_texts)
    onehot = np.zeros((n_classes, len(ys)))
    onehot[ys, np.arange(len(ys))] = 1.0 / np.bincount(ys, minlength=n_classes)[ys]
    cents = np.asarray((s.T @ onehot.T).T)  # (C, V) dense class means
    cents = l2n(cents)
    sims = np.asarray(q @ cents.T)  # rows of q are unit already
    return sims.argmax(1)


def knn(xs: np.ndarray, ys: np.ndarray, xq: np.ndarray, n_classes: int, k: int = 3) -> np.ndarray:
    """Similarity-weighted vote of the k nearest support items (cosine on unit embeddings)."""
    k = max(1, min(k, len(ys)))
    sims = xq @ xs.T  # (Q, S)
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]  # (Q, k)
    votes = np.zeros((len(xq), n_classes))
    rows = np.repeat(np.arange(len(xq)), k)
    np.add.at(votes, (rows, ys[top].ravel()), np.take_along_axis(sims, top, 1).ravel() + 1.0)
    return votes.argmax(1)


def logistic_regression(
    xs: np.ndarray, ys: np.ndarray, xq: np.ndarray, n_classes: int, seed: int = 0
) -> np.ndarray:
    """Multinomial logistic regression on the embeddings (C=10, lbfgs)."""
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(ys)) < 2:
        return np.full(len(xq), int(ys[0]))
    clf = LogisticRegression(C=10.0, max_iter=300, random_state=seed).fit(xs, ys)
    return clf.classes_[clf.predict_proba(xq).argmax(1)]


def plain_prototypes(xs: np.ndarray, ys: np.ndarray, xq: np.ndarray, n_classes: int) -> np.ndarray:
    """Nearest class mean by cosine on raw encoder embeddings (no training, no tricks)."""
    return (l2n(xq) @ l2n(prototypes(xs, ys, n_classes)).T).argmax(1)
