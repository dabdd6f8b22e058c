"""Serving another shop's catalogue and training a new shop from a source model (FakeEncoder)."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from metarec_core.coldstart.train import train_model
from metarec_core.coldstart.transfer import for_catalogue, source_weights, train_from, with_log
from metarec_core.data.canonical import canonical_interactions, canonical_items
from metarec_core.embed.encoder import FakeEncoder
from metarec_core.errors import ValidationError
from tests.test_coldstart_engine import N_GROUPS, TINY

COLOURS = ("red", "green", "blue", "yellow")  # one word per group, shared by both shops


def shop(prefix: str, word: str, n_items: int = 40, n_users: int = 80, seed: int = 1):
    """A second shop: other ids and other products, but groups named by the same colour words."""
    rng = np.random.default_rng(seed)
    items = pd.DataFrame(
        {
            "item_id": [f"{prefix}{i}" for i in range(n_items)],
            "title": [f"{COLOURS[i % N_GROUPS]} {word} no {i}" for i in range(n_items)],
        }
    )
    rows = []
    for u in range(n_users):
        pool = [i for i in range(n_items) if i % N_GROUPS == u % N_GROUPS]
        for p, i in enumerate(rng.choice(pool, 6, replace=False)):
            rows.append((f"{prefix}u{u}", f"{prefix}{i}", p))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "position"])
    return canonical_interactions(inter), canonical_items(items)


@pytest.fixture(scope="module")
def source():
    inter, items = shop("s", "shirt", n_items=48, n_users=160, seed=0)
    return train_model(inter, items, TINY, encoder=FakeEncoder())


def support(ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"user_id": ["x"] * len(ids), "item_id": ids, "position": range(len(ids))})


def test_a_new_catalogue_is_served_by_text_never_recommending_the_support(source):
    _, items = shop("t", "mug")
    served = for_catalogue(source, items, encoder=FakeEncoder())
    assert served.report["served_catalogue"] == {
        "n_items": 40,
        "known_items": 0,
        "items_without_text": 0,
    }
    assert not served.meta.seen.any() and float(served.meta.id_in.detach().abs().sum()) == 0.0
    recs = served.recommend(support(["t0", "t4", "t8"]), top=6).frame
    assert set(recs["item_id"]).isdisjoint({"t0", "t4", "t8"})
    assert recs["item_id"].str.startswith("t").all()
    same_group = [int(i[1:]) % N_GROUPS == 0 for i in recs["item_id"]]
    assert sum(same_group) >= 4  # the "red" mugs: learned on shirts, carried by the text


def test_a_catalogue_smaller_than_top_lists_only_items_outside_the_support(source):
    """With fewer other items than ``top``, the list is shorter: support items never fill it."""
    _, items = shop("t", "mug")
    served = for_catalogue(source, items.head(6), encoder=FakeEncoder())
    frame = served.recommend(support(["t0", "t1", "t2", "t3"]), top=5).frame
    assert sorted(frame["item_id"]) == ["t4", "t5"]
    assert frame["rank"].tolist() == [1, 2]
    steps = served.recommend_steps(support(["t0", "t1", "t2", "t3"]), steps=[0, 4], top=5).frame
    assert steps.groupby("step").size().to_dict() == {0: 5, 4: 2}
    assert list(steps.columns[:3]) == ["user_id", "step", "rank"]
    every = pd.concat(
        [support(["t0", "t1", "t2", "t3", "t4", "t5"]), support(["t0"]).assign(user_id="y")]
    )
    recs = served.recommend(every, top=5)
    assert recs.users_without_items == ["x"] and set(recs.frame["user_id"]) == {"y"}


def test_known_items_keep_their_id_rows_and_neighbours(source):
    _, own = shop("s", "shirt", n_items=48, n_users=160, seed=0)
    extra = pd.DataFrame({"item_id": ["new1"], "title": ["red shirt brand new"]})
    items = canonical_items(pd.concat([own[["item_id", "title"]], extra], ignore_index=True))
    served = for_catalogue(source, items, encoder=FakeEncoder())
    assert served.report["served_catalogue"]["known_items"] == 48
    row_src, row_new = source.index["s5"], served.index["s5"]
    assert torch.equal(served.meta.id_in[row_new].cpu(), source.meta.id_in[row_src].cpu())
    assert served.pop[row_new] == source.pop[row_src] and served.pop[served.index["new1"]] == 0
    src_nb = {source.catalogue.item_ids[j] for j in source.ease.idx[row_src] if j >= 0}
    new_nb = {served.catalogue.item_ids[j] for j in served.ease.idx[row_new] if j >= 0}
    assert new_nb == src_nb and len(new_nb) > 0


def test_same_catalogue_is_the_model_itself(source):
    _, own = shop("s", "shirt", n_items=48, n_users=160, seed=0)
    assert for_catalogue(source, own, encoder=FakeEncoder()) is source


def test_items_without_text_are_skipped_and_counted(source):
    raw = pd.DataFrame({"item_id": ["a", "b", "c"], "title": ["red mug", "", "blue mug"]})
    served = for_catalogue(source, canonical_items(raw), encoder=FakeEncoder())
    assert served.report["served_catalogue"]["items_without_text"] == 1
    assert list(served.catalogue.item_ids) == ["a", "c"]
    empty = canonical_items(pd.DataFrame({"item_id": ["a", "b"], "title": ["", " "]}))
    with pytest.raises(ValidationError, match="no item has any text"):
        for_catalogue(source, empty, encoder=FakeEncoder())


def test_a_new_shop_ranks_empty_histories_by_the_learned_prior(source):
    _, items = shop("t", "mug")
    served = for_catalogue(source, items, encoder=FakeEncoder())
    assert float(served.pop_t.std()) > 0  # not 40 ties
    recs = served.recommend(support(["unknown"]), top=5)
    assert recs.fallback_users == ["x"] and recs.skipped_items == 1


def test_with_log_fits_in_shop_statistics(source):
    inter, items = shop("t", "mug")
    shop_model = with_log(for_catalogue(source, items, encoder=FakeEncoder()), inter)
    assert shop_model.pop.sum() == len(inter)
    assert (shop_model.ease.idx >= 0).any()
    ranked = shop_model.recommend(support(["t0", "t4"]), top=5, method="ease").frame
    assert all(int(i[1:]) % N_GROUPS == 0 for i in ranked["item_id"])


def test_training_from_a_source_starts_from_its_weights(source):
    inter, items = shop("t", "mug")
    frozen = TINY.__class__(**{**TINY.to_dict(), "lr": 1e-12})
    init = source_weights(source)
    model = train_model(inter, items, frozen, encoder=FakeEncoder(), init=init)
    assert torch.allclose(model.pretrained.w_in.weight.cpu(), init["pretrained"]["w_in.weight"])
    assert torch.allclose(model.meta.w_in.weight.cpu(), init["meta"]["w_in.weight"], atol=1e-6)
    assert model.report["pretrained"]["from"] == "source"
    assert "id_in" not in init["meta"] and "text" not in init["meta"]


def test_train_from_keeps_the_better_of_transfer_and_fresh(source):
    inter, items = shop("t", "mug", n_users=200)
    model = train_from(source, inter, items, TINY, encoder=FakeEncoder())
    info = model.report["init_from"]
    assert info["kept"] in ("transfer", "fresh")
    best = max(info["val_ndcg10_transfer"], info["val_ndcg10_fresh"])
    assert max(model.report["meta"]["val_ndcg10"]) == pytest.approx(best)


def test_train_from_a_log_too_small_to_validate_keeps_the_source_and_says_so(source, tmp_path):
    inter, items = shop("t", "mug", n_users=30)  # a fifth of 30 users: too few to hold back
    model = train_from(source, inter, items, TINY, encoder=FakeEncoder())
    info = model.report["init_from"]
    assert info["kept"] == "transfer" and info["validated"] is False
    assert info["val_ndcg10_transfer"] is None and info["val_ndcg10_fresh"] is None
    assert model.report["meta"]["val_ndcg10"] == []  # no made-up validation figures
    assert model.report["meta"]["best_epoch"] >= 1  # the last epoch trained
    source.save(tmp_path / "m")
    inter.to_csv(tmp_path / "log.csv", index=False)
    items.to_csv(tmp_path / "items.csv", index=False)
    done = subprocess.run(
        [sys.executable, "-m", "metarec_core", "train", "--init-from", str(tmp_path / "m"),
         "--interactions", str(tmp_path / "log.csv"), "--items", str(tmp_path / "items.csv"),
         "--out", str(tmp_path / "new"), "--epochs", "1", "--device", "cpu"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "too few users to validate on" in done.stdout
    assert (
        "kept the model trained from" in done.stdout and "too few users to hold any" in done.stdout
    )


def test_a_model_of_a_new_shop_mixes_in_its_log_counts_where_the_request_shows_they_help(source):
    from metarec_core.coldstart.transfer import serve_new_shop

    inter, items = shop("t", "mug", n_users=30)
    staples = ("t1", "t6", "t11")
    bought = pd.DataFrame(
        [(f"tu{u}", staples[(u + j) % 3], 6 + j) for u in range(30) for j in range(2)],
        columns=["user_id", "item_id", "position"],
    )
    log = canonical_interactions(pd.concat([inter, bought], ignore_index=True))
    model = train_from(source, log, items, TINY, encoder=FakeEncoder())
    rng = np.random.default_rng(5)
    request = pd.DataFrame(
        [(f"n{u}", f"t{rng.integers(12, 40)}", 0) for u in range(40)]
        + [(f"n{u}", staples[u % 3], 1) for u in range(40)],
        columns=["user_id", "item_id", "position"],
    )
    recs = model.recommend(request, top=3)
    assert recs.popularity_share > 0
    top1 = recs.frame[recs.frame["rank"] == 1]["item_id"]
    assert top1.isin(staples).mean() > 0.9
    own = copy.copy(model)
    own.report = {k: v for k, v in model.report.items() if k != "init_from"}
    assert own.recommend(request, top=3).popularity_share == 0.0  # a model trained in-shop
    one = model.recommend(request[request["user_id"] == "n0"], top=3)
    assert one.popularity_share == 0.0  # one shopper cannot show it
    # on another catalogue its counts are not its log's: only the supports' own choice counts
    _, other = shop("o", "cup", n_items=200)
    unique = pd.DataFrame(
        [(f"u{u}", f"o{2 * u + p}", p) for u in range(20) for p in range(2)],
        columns=["user_id", "item_id", "position"],
    )
    served = serve_new_shop(model, other, unique, encoder=FakeEncoder())
    assert served.popularity_share == 0.0
    assert served.recommend(unique, top=3).popularity_share == 0.0


def test_cli_recommend_items_serves_another_catalogue(source, tmp_path):
    _, items = shop("t", "mug")
    source.save(tmp_path / "m")
    items[["item_id", "title"]].to_csv(tmp_path / "items.csv", index=False)
    pd.DataFrame(
        {"user_id": ["x", "x", "y"], "item_id": ["t0", "missing", "t1"], "position": [0, 1, 0]}
    ).to_csv(tmp_path / "support.csv", index=False)
    base = [sys.executable, "-m", "metarec_core", "recommend", "--model", str(tmp_path / "m")]
    args = ["--items", str(tmp_path / "items.csv"), "--support", str(tmp_path / "support.csv")]
    out = tmp_path / "recs.csv"
    done = subprocess.run(
        [*base, *args, "--top", "5", "--out", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    recs = pd.read_csv(out)
    assert len(recs) == 10 and recs["item_id"].str.startswith("t").all()
    assert "skipped 1 support row" in done.stderr
    refused = subprocess.run(
        [*base, *args, "--method", "ease", "--out", str(out)], capture_output=True, text=True
    )
    assert refused.returncode != 0 and "needs interactions" in refused.stderr
    assert "Traceback" not in refused.stderr
    (tmp_path / "bad.csv").write_text("item_id,price\n1,3\n2,4\n")
    bad = subprocess.run(
        [*base, "--items", str(tmp_path / "bad.csv"), "--support", str(tmp_path / "support.csv"),
         "--out", str(out)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert bad.returncode != 0 and "no text column" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_a_new_shop_learns_from_the_supports_leaving_each_user_out(source):
    from metarec_core.coldstart.episodes import support_tensors, table_rows
    from metarec_core.coldstart.transfer import serve_new_shop

    _, items = shop("t", "mug")
    # t0 and t4 are each bought by two users, but together only by u1
    pairs = {"u1": ("t0", "t4"), "u2": ("t0", "t1"), "u3": ("t4", "t5"), "u4": ("t1", "t5")}
    rows = [(u, i, p) for u, items_ in pairs.items() for p, i in enumerate(items_)]
    rows += [(f"v{i}", f"t{2 + 4 * (i % 9)}", 0) for i in range(9)]  # no pairs: popularity only
    support_log = pd.DataFrame(rows, columns=["user_id", "item_id", "position"])
    served = serve_new_shop(source, items, support_log, encoder=FakeEncoder())
    assert served.words is not None and served.loo is not None
    assert served.pop[served.index["t0"]] == 2  # the supports are the shop's log ...
    bare = serve_new_shop(source, items, None, encoder=FakeEncoder())
    assert torch.equal(served.pop_t, bare.pop_t)  # ... but empty histories keep the prior
    t0, t4 = served.index["t0"], served.index["t4"]
    s, m, _ = support_tensors([np.array([t0, t4])], served.meta.pos.shape[0], served.device)
    shared = table_rows(*served.ease_t, s, m, len(served.catalogue))
    own_out = served.loo.rows(s, m, [np.array([t0, t4])])
    assert shared[0, 0, t4] > 0  # u1's own pair is in the shop's EASE ...
    assert own_out[0, 0, t4] == pytest.approx(0.0, abs=1e-6)  # ... but not in u1's rows
    recs = served.recommend(support_log[support_log["user_id"] == "u1"], top=5).frame
    assert set(recs["item_id"]).isdisjoint({"t0", "t4"})


def test_a_new_shop_bought_by_popularity_mixes_in_its_supports_counts(source, tmp_path):
    from metarec_core.coldstart.shop_popularity import MIN_USERS
    from metarec_core.coldstart.transfer import serve_new_shop

    _, items = shop("t", "mug")
    rng = np.random.default_rng(3)
    staples = ("t1", "t6", "t11")  # bought by almost everyone, in three colours
    rows = []
    for u in range(60):
        rows.append((f"u{u}", f"t{rng.integers(12, 40)}", 0))
        rows.append((f"u{u}", staples[u % 3], 1))
    grocery = pd.DataFrame(rows, columns=["user_id", "item_id", "position"])
    served = serve_new_shop(source, items, grocery, encoder=FakeEncoder())
    info = served.report["served_catalogue"]
    assert info["popularity_share"] > 0 and served.shop_popularity is not None
    assert (
        info["popularity_share_gains"][f"{info['popularity_share']:g}"]
        > (info["popularity_share_gains"]["0"])
    )
    recs = served.recommend(support(["t20", "t27"]), top=3).frame
    assert set(recs["item_id"]) == set(staples)
    source.save(tmp_path / "m")
    items[["item_id", "title"]].to_csv(tmp_path / "items.csv", index=False)
    grocery.to_csv(tmp_path / "support.csv", index=False)
    done = subprocess.run(
        [sys.executable, "-m", "metarec_core", "recommend", "--model", str(tmp_path / "m"),
         "--items", str(tmp_path / "items.csv"), "--support", str(tmp_path / "support.csv"),
         "--out", str(tmp_path / "recs.csv")],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"item counts take {info['popularity_share']:g} of the score" in done.stderr

    # every item bought once: the counts cannot rank anyone's hidden item, so they stay out
    unique = pd.DataFrame(
        [(f"u{u}", f"t{2 * u + p}", p) for u in range(20) for p in range(2)],
        columns=["user_id", "item_id", "position"],
    )
    alone = serve_new_shop(source, items, unique, encoder=FakeEncoder())
    assert alone.report["served_catalogue"]["popularity_share"] == 0.0
    assert alone.shop_popularity is None
    few = serve_new_shop(source, items, grocery.head(2 * (MIN_USERS - 1)), encoder=FakeEncoder())
    assert few.report["served_catalogue"]["popularity_share_gains"] == {}


def test_the_share_is_chosen_on_every_late_support_item_not_only_the_last(source):
    from metarec_core.coldstart.transfer import serve_new_shop

    _, items = shop("t", "mug", n_items=80)
    staples = ("t1", "t6", "t11")
    rows = []
    for u in range(60):  # two staples first, then an item nobody else buys
        rows.append((f"u{u}", staples[u % 3], 0))
        rows.append((f"u{u}", staples[(u + 1) % 3], 1))
        rows.append((f"u{u}", f"t{12 + u}", 2))
    log = pd.DataFrame(rows, columns=["user_id", "item_id", "position"])
    served = serve_new_shop(source, items, log, encoder=FakeEncoder())
    info = served.report["served_catalogue"]
    # the last items alone say the counts do not help; the hidden staples say they do
    assert info["popularity_share"] > 0, info["popularity_share_gains"]

    # supports of items each bought twice leave nothing to hide: no choice, share 0
    twice = pd.DataFrame(
        [(f"u{u}", f"t{i}", p) for u in range(30) for p, i in enumerate((1, 1, 6, 6))],
        columns=["user_id", "item_id", "position"],
    )
    info = serve_new_shop(source, items, twice, encoder=FakeEncoder()).report["served_catalogue"]
    assert info["popularity_share"] == 0.0 and info["popularity_share_gains"] == {}


def test_popularity_mix_leaves_the_score_alone_at_share_zero():
    from metarec_core.coldstart.recommend import with_popularity

    net = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    counts = torch.tensor([0.0, 0.0, 0.0, 5.0])
    assert torch.equal(with_popularity(net, counts, 0.0), net)
    assert with_popularity(net, counts, 0.2).argmax().item() == 0
    assert with_popularity(net, counts, 0.9).argmax().item() == 3


def test_standardised_rows_match_torch_std_and_take_a_scale():
    from metarec_core.coldstart.recommend import standardised, with_popularity

    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3000, generator=g) * 4.0 + 50.0
    x[2] = 7.0  # a constant row: zeros, not NaN
    expected = (x - x.mean(1, keepdim=True)) / (x.std(1, keepdim=True) + 1e-6)
    assert torch.allclose(standardised(x), expected, atol=1e-4)
    assert torch.allclose(standardised(x, 0.3), 0.3 * expected, atol=1e-4)
    assert torch.equal(standardised(x)[2], torch.zeros(3000))
    assert not torch.isnan(standardised(torch.ones(3, 1))).any()
    pop = torch.rand(3000, generator=g)
    mixed = 0.8 * expected + 0.2 * (pop - pop.mean()) / (pop.std() + 1e-6)
    assert torch.allclose(with_popularity(x, pop, 0.2), mixed, atol=1e-4)


def test_word_match_scores_shared_words_higher():
    from metarec_core.coldstart.transfer import WordMatch

    words = WordMatch(["red mug", "red cup", "blue plate", "green fork"])
    scores = words.scores(torch.tensor([[0, 0]]), torch.tensor([[1.0, 0.0]]))[0]
    assert scores[1] > scores[2] and scores[2] == scores[3] == 0


def test_word_overlap_is_a_minority_share_of_a_new_shops_score():
    from metarec_core.coldstart.recommend import WORDS_SHARE, with_words

    net = torch.tensor([[3.0, 2.0, 1.0, 0.0]])  # the network prefers item 0
    words = torch.tensor([[0.0, 0.0, 0.0, 9.0]])  # the words prefer item 3
    assert 0 < WORDS_SHARE < 0.5
    assert with_words(net, words).argmax().item() == 0  # the network leads ...
    mixed = with_words(net, words)[0]
    assert mixed[3] > with_words(net, torch.zeros_like(words))[0][3]  # ... words still move
    assert with_words(net, words, 1.0).argmax().item() == 3


def test_a_new_shops_score_joins_the_encoder_cosine_to_the_network_and_words(source, monkeypatch):
    import metarec_core.coldstart.recommend as rec
    from metarec_core.coldstart.transfer import serve_new_shop

    _, items = shop("t", "mug")
    served = serve_new_shop(source, items, None, encoder=FakeEncoder())
    rows, tables, share = [np.array([0, 5]), np.array([3])], served.tables(), rec.ENCODER_SHARE
    assert 0 < share < 0.5
    _, joined, _, _ = rec.chunk_scores(served, "adapted", rows, tables)
    monkeypatch.setattr(rec, "ENCODER_SHARE", 0.0)
    _, alone, _, _ = rec.chunk_scores(served, "adapted", rows, tables)
    cosine = torch.stack([served.text[r].sum(0) @ served.text.T for r in rows])
    expected = (1 - share) * rec.standardised(alone) + share * rec.standardised(cosine)
    assert not torch.allclose(joined, alone, atol=1e-3)
    assert torch.allclose(joined, expected, atol=1e-4)
    # a model serving its own catalogue has no such mix
    own = rec.chunk_scores(source, "adapted", [np.array([0, 5])], source.tables())[1]
    monkeypatch.setattr(rec, "ENCODER_SHARE", share)
    assert torch.equal(
        own, rec.chunk_scores(source, "adapted", [np.array([0, 5])], source.tables())[1]
    )


def test_evaluate_transfer_serves_the_init_from_model_as_recommend_does(source):
    from metarec_core.coldstart.shop_popularity import SHARES
    from metarec_core.evaluate.transfer_eval import evaluate_transfer

    inter, items = shop("t", "mug", n_users=150)
    report = evaluate_transfer(
        source, inter, items, k=3, target_users=(0, 40), train_at=(40,), config=TINY,
        encoder=FakeEncoder(),
    )  # fmt: skip
    row = report.rows[report.rows["method"] == "init-from"].iloc[0]
    assert row["target_users"] == 40 and row["kept"] in ("transfer", "fresh")
    assert row["popularity_share"] in SHARES and 0 <= row["ndcg@10"] <= 1
    assert report.info["catalogue"]["popularity_share"] in SHARES  # the zero-log choice


def test_cli_evaluate_cross_shop_from_a_source_model(source, tmp_path):
    import json

    inter, items = shop("t", "mug", n_users=150)
    folder = tmp_path / "target"
    folder.mkdir()
    inter[["user_id", "item_id", "position"]].to_csv(folder / "interactions.csv", index=False)
    items[["item_id", "title"]].to_csv(folder / "items.csv", index=False)
    source.save(tmp_path / "m")
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "metarec_core", "evaluate", "--dataset", str(folder),
         "--source-model", str(tmp_path / "m"), "--target-users", "0,20,all", "--seeds", "0",
         "--out", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = pd.DataFrame(json.loads(out.read_text())["runs"][0]["rows"])
    zero = set(rows[rows["target_users"] == 0]["method"])
    assert zero == {"adapted", "no-adapt", "text-tfidf", "text-similarity"}
    assert sorted(rows["target_users"].unique())[1:] == [20, 135]  # 20 and all 135 warm users
    assert rows["ndcg@10"].between(0, 1).all()
    assert "NDCG@10 by warm target users seen" in done.stdout


def test_equal_scores_are_listed_in_catalogue_order_whatever_the_list_length(source):
    from metarec_core.coldstart.scoring import top_items

    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (50, 300), generator=g).float()
    scores[:25] += torch.rand(25, 300, generator=g)  # half the rows without ties
    full = torch.sort(scores, dim=1, descending=True, stable=True)
    for top in (1, 7, 20, 300):
        vals, rows = top_items(scores, top)
        assert torch.equal(rows, full.indices[:, :top]) and torch.equal(vals, full.values[:, :top])

    # items named alike score alike: a short list is the start of a longer one
    items = pd.DataFrame(
        {
            "item_id": [f"t{i}" for i in range(60)],
            "title": [f"plain mug {i % 6}" for i in range(60)],
        }
    )
    items = canonical_items(items)
    served = for_catalogue(source, items, encoder=FakeEncoder())
    log = pd.DataFrame(
        [(f"u{u}", f"t{(7 * u + p) % 60}", p) for u in range(12) for p in range(3)],
        columns=["user_id", "item_id", "position"],
    )
    short = served.recommend(log, top=4).frame
    long = served.recommend(log, top=15).frame
    assert short["score"].duplicated().any()  # there are ties to order
    for user, rows in short.groupby("user_id"):
        assert rows["item_id"].tolist() == long[long["user_id"] == user]["item_id"].tolist()[:4]


def test_brand_codes_compare_names_without_case_or_spaces_and_leave_missing_ones_out():
    from metarec_core.coldstart.brands import brand_codes

    items = pd.DataFrame(
        {"item_id": ["a", "b", "c", "d", "e"], "Brand": ["OPI", " opi", None, "", "Essie"]}
    )
    codes = brand_codes(items, np.array(["e", "a", "b", "c", "d", "zz"]))
    assert codes[1] == codes[2] >= 0  # "OPI" and " opi", listed in the order asked
    assert codes[0] >= 0 and codes[0] != codes[1]  # Essie
    assert (codes[3:] == -1).all()  # no brand, an empty one, an id the frame lacks
    assert brand_codes(items.drop(columns="Brand"), np.array(["a"])) is None
    unique = pd.DataFrame({"item_id": ["a", "b"], "manufacturer": ["x", "y"]})
    assert brand_codes(unique, np.array(["a", "b"])) is None  # no two items share a brand


def test_brand_matches_count_each_users_valid_support_items_of_the_items_brand():
    from metarec_core.coldstart.brands import brand_matches

    codes = torch.tensor([0, 0, 1, -1, 1, 0])
    support = torch.tensor([[0, 2, 1], [3, 0, 0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])  # user 1: one item, without a brand
    got = brand_matches(codes, support, mask)
    assert got.tolist() == [[2, 2, 1, 0, 1, 2], [0, 0, 0, 0, 0, 0]]


def test_a_new_shop_with_brands_lists_the_supports_brand_before_look_alikes_of_others(source):
    """Twin items share a title (the same text, the same scores) but not their brand: the twin of
    the support's brand comes first, where catalogue order alone would put the other first."""
    from metarec_core.coldstart.transfer import serve_new_shop

    n = 40
    items = canonical_items(
        pd.DataFrame(
            {
                "item_id": [f"t{i}" for i in range(n)],
                "title": [f"{COLOURS[(i // 2) % N_GROUPS]} mug no {i // 2}" for i in range(n)],
                "brand": ["Other" if i % 2 == 0 else "Acme" for i in range(n)],
            }
        )
    )
    sup = pd.DataFrame({"user_id": ["x", "x"], "item_id": ["t1", "t9"], "position": [0, 1]})
    served = serve_new_shop(source, items, sup, encoder=FakeEncoder())
    assert served.brands is not None
    listed = list(served.recommend(sup, top=12).frame["item_id"])
    place = {item: p for p, item in enumerate(listed)}
    pairs = [(f"t{2 * j + 1}", f"t{2 * j}") for j in range(n // 2)]
    both = [(acme, other) for acme, other in pairs if acme in place and other in place]
    assert both and all(place[acme] < place[other] for acme, other in both)
    plain = serve_new_shop(source, items.drop(columns="brand"), sup, encoder=FakeEncoder())
    assert plain.brands is None
    listed = list(plain.recommend(sup, top=12).frame["item_id"])
    place = {item: p for p, item in enumerate(listed)}
    assert any(place[o] < place[a] for a, o in pairs if a in place and o in place)
