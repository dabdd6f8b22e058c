"""Word features of a task's titles beside the encoder (categories/words.py and engine.score)."""

from __future__ import annotations

import numpy as np

from metarec_core.categories import CategoryConfig, CategoryModel
from metarec_core.categories.config import EngineConstants
from metarec_core.categories.engine import score
from metarec_core.categories.protonet import l2n
from metarec_core.categories.words import with_words, word_features

BRANDS = ("acme", "zenith", "borealis")


def test_word_features_are_repeatable_and_keep_shared_words_close():
    texts = ["acme soap bar", "acme soap refill", "zenith hair gel", "!!!"]
    a, b = word_features(texts, 256), word_features(texts, 256)
    assert a.shape == (4, 256) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    sim = l2n(a[:3]) @ l2n(a[:3]).T
    assert sim[0, 1] > sim[0, 2] + 0.3  # two acme soaps against a hair gel
    assert np.abs(a[3]).sum() == 0  # no words: a zero row
    assert word_features(["", "!!"], 64) is None
    chinese = [
        "巧克力夹心饼干",
        "全季调味盐",
        "有机草莓酸奶",
        "薰衣草洗手液",
    ]  # no spaces: no shared words
    assert word_features(chinese, 64) is None


def test_with_words_joins_unit_rows_and_leaves_names_without_words():
    rng = np.random.default_rng(0)
    zs, zq, zn = (l2n(rng.normal(size=(n, 8))).astype(np.float32) for n in (2, 3, 2))
    texts = ["acme soap", "zenith gel", "acme soap bar", "zenith gel tube", "other"]
    js, jq, jn = with_words(zs, zq, zn, texts, 0.7, 16)
    assert js.shape == (2, 24) and jq.shape == (3, 24) and jn.shape == (2, 24)
    np.testing.assert_allclose(np.linalg.norm(np.concatenate([js, jq]), axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(jn[:, 8:], 0.0)
    assert with_words(zs, zq, zn, ["", "", "", "", ""], 0.7, 16)[0] is zs  # no words: unchanged


def _brand_task(seed: int = 0):
    """Soaps of two brands (the encoder sees one topic, only the brand word tells them apart)
    and a third category of its own topic."""
    rng = np.random.default_rng(seed)
    ys, yq = np.repeat([0, 1, 2], 3), np.repeat([0, 1, 2], 10)
    kinds = ["soap bar", "hand soap", "soap refill", "liquid soap", "soap pump"]
    text = lambda c, i: f"{BRANDS[c]} {kinds[i % 5]}" if c < 2 else f"hair gel {kinds[i % 5]}"  # noqa: E731
    topics = l2n(rng.normal(size=(2, 32)))

    def embed(labels):
        x = topics[np.minimum(labels, 1)] + 0.3 * rng.normal(size=(len(labels), 32))
        return l2n(x).astype(np.float32)

    texts = [text(c, i) for i, c in enumerate(ys)] + [text(c, i + 1) for i, c in enumerate(yq)]
    return embed(ys), ys, embed(yq), yq, texts


def test_words_carry_a_category_the_encoder_misses_in_a_closed_set_only():
    xs, ys, xq, yq, texts = _brand_task()
    on = CategoryModel.untrained()
    off = CategoryModel.untrained(CategoryConfig(engine=EngineConstants(word_weight=0.0)))
    assert on.config.engine.word_weight > 0
    acc_on = (score(on, xs, ys, xq, 3, texts=texts).pred == yq).mean()
    acc_off = (score(off, xs, ys, xq, 3, texts=texts).pred == yq).mean()
    assert acc_on >= 0.9 and acc_off < 0.7, (acc_on, acc_off)
    without = score(on, xs, ys, xq, 3)  # no titles given: the encoder alone
    np.testing.assert_array_equal(without.pred, score(off, xs, ys, xq, 3, texts=texts).pred)
    open_on = score(on, xs, ys, xq, 3, open_set=True, texts=texts)  # thresholds: encoder space
    assert open_on.z_query.shape[1] == xq.shape[1]
    assert CategoryModel.plain().config.engine.word_weight == 0.0


def test_titles_split_into_the_words_and_pairs_of_a_standard_analyser():
    """Words of 2+ letters or digits, lower case, and each pair of adjacent words: what
    scikit-learn's word 1-2 gram analyser gives, accents, digits and punctuation included."""
    from sklearn.feature_extraction.text import CountVectorizer

    from metarec_core.categories.words import _terms

    texts = [
        "Crème Brûlée, 2% Milk (Organic)",
        "A b cd-ef_gh  ij",
        "",
        "über-Größe 500ml x 2",
        "Ωmega 3 fish_oil",
    ]
    rows, terms, vocabulary = _terms(texts)
    analyse = CountVectorizer(ngram_range=(1, 2)).build_analyzer()
    for i, text in enumerate(texts):
        got = sorted(vocabulary[t] for t in terms[rows == i])
        assert got == sorted(analyse(text)), text


def test_tfidf_matrix_equals_scikit_learns_vectorizer():
    """The new shop's word overlap (coldstart/transfer.WordMatch) uses ``tfidf_matrix``: the
    same rows as TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), up to term order."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from metarec_core.categories.words import tfidf_matrix

    texts = [
        "Crème Brûlée, 2% Milk (Organic)",
        "organic milk organic milk 2%",
        "über-Größe 500ml x 2",
        "",
        "Greek Yogurt Plain, Greek style",
        "有机 香蕉",
    ]
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    want = vec.fit_transform(texts).toarray()
    got = tfidf_matrix(texts)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.toarray() @ got.toarray().T, want @ want.T, atol=1e-6)
    np.testing.assert_allclose(np.sort(got.toarray(), 1), np.sort(want, 1), atol=1e-6)


def test_the_name_prior_is_judged_in_the_encoders_space_whatever_the_titles_words():
    """Names have no word features, so whether they help is decided before the words join:
    the same support decides the same way with or without its titles."""
    rng = np.random.default_rng(3)
    n_classes, shots = 8, 5
    topics = l2n(rng.normal(size=(n_classes, 24)))
    names = l2n(topics + 1.5 * rng.normal(size=topics.shape)).astype(np.float32)
    model = CategoryModel.untrained()
    decided = []
    for seed in range(12):
        r = np.random.default_rng(seed)
        ys, yq = np.repeat(np.arange(n_classes), shots), np.repeat(np.arange(n_classes), 6)
        xs = l2n(topics[ys] + 0.8 * r.normal(size=(len(ys), 24))).astype(np.float32)
        xq = l2n(topics[yq] + 0.8 * r.normal(size=(len(yq), 24))).astype(np.float32)
        vocab = [f"w{i}" for i in range(30)]
        texts = [" ".join(r.choice(vocab, 3)) for _ in range(len(ys) + len(yq))]
        with_titles = score(model, xs, ys, xq, n_classes, names, texts=texts).used_names
        assert with_titles == score(model, xs, ys, xq, n_classes, names).used_names, seed
        decided.append(with_titles)
    assert 0 < sum(decided) < len(decided)  # tasks on both sides of the decision
