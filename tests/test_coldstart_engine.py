"""Cold-start engine on tiny deterministic data with the FakeEncoder: maths, ranking, persistence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from metarec_core.coldstart import METHODS, ColdStartConfig
from metarec_core.coldstart.model import ColdStartModel
from metarec_core.coldstart.train import train_model
from metarec_core.data.canonical import canonical_interactions, canonical_items
from metarec_core.embed.encoder import FakeEncoder
from metarec_core.errors import ConflictError, MetaRecError, ValidationError

N_ITEMS, N_GROUPS = 48, 4
TINY = ColdStartConfig(
    epochs=2, min_steps=0, batch_size=32, dim=8, k_max=4, neighbours=10, device="cpu"
)


def tiny_frames(n_users: int = 120, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Users buy 6 items from one of 4 text-coherent groups (so text and co-occurrence both help)."""
    rng = np.random.default_rng(seed)
    items = pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(N_ITEMS)],
            "title": [
                f"group{i % N_GROUPS} brand{i % N_GROUPS} product {i}" for i in range(N_ITEMS)
            ],
        }
    )
    rows = []
    for u in range(n_users):
        pool = [i for i in range(N_ITEMS) if i % N_GROUPS == u % N_GROUPS]
        for p, i in enumerate(rng.choice(pool, 6, replace=False)):
            rows.append((f"u{u}", f"i{i}", p))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "position"])
    return canonical_interactions(inter), canonical_items(items)


@pytest.fixture(scope="module")
def frames():
    return tiny_frames()


@pytest.fixture(scope="module")
def model(frames):
    return train_model(*frames, TINY, encoder=FakeEncoder())


def support_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "b", "c"],
            "item_id": ["i0", "i4", "i8", "i1", "nope"],
            "position": [0, 1, 2, 0, 0],
        }
    )


def _batch(model: ColdStartModel):
    from metarec_core.coldstart.episodes import UserBatch, support_tensors, table_rows

    s, m, r = support_tensors(
        [np.array([0, 4, 8]), np.array([1, 5])], model.meta.pos.shape[0], model.device
    )
    return UserBatch(s, m, r, table_rows(*model.ease_t, s, m, len(model.catalogue)))


def test_inner_loop_with_zero_lr_changes_nothing(model):
    from metarec_core.coldstart.maml import adapt

    batch, net = _batch(model), model.meta
    phi0 = net.init_phi(*batch.support.shape)
    lrs = net.inner_lrs(zero=True)
    phi, curve = adapt(phi0, batch.args(net.pos), net.tables(), net.u0, net.mix(), lrs, steps=3)
    for key in phi0:
        assert torch.equal(phi[key], phi0[key])
    assert torch.allclose(curve, curve[:, :1].expand_as(curve))


def test_one_adaptation_step_lowers_support_loss(model):
    from metarec_core.coldstart.maml import adapt

    batch, net = _batch(model), model.meta
    phi0 = net.init_phi(*batch.support.shape)
    lrs = {k: torch.full_like(v, 0.1) for k, v in net.inner_lrs().items()}
    with torch.no_grad():
        _, curve = adapt(phi0, batch.args(net.pos), net.tables(), net.u0, net.mix(), lrs, steps=1)
    assert (curve[:, 1] < curve[:, 0]).all()


@pytest.mark.parametrize("method", METHODS)
def test_every_method_ranks_without_support_items(model, method):
    recs = model.recommend(support_frame(), top=10, method=method)
    f = recs.frame
    assert list(f.columns[:4]) == ["user_id", "rank", "item_id", "score"]
    assert set(f.user_id) == {"a", "b", "c"}
    for user, items in (("a", {"i0", "i4", "i8"}), ("b", {"i1"})):
        got = f[f.user_id == user]
        assert list(got["rank"]) == list(range(1, 11))
        assert not items & set(got.item_id)
        assert got.item_id.is_unique
    assert recs.fallback_users == ["c"] and recs.skipped_items == 1
    assert f[f.user_id == "c"].fallback.all() and not f[f.user_id == "a"].fallback.any()
    assert isinstance(f.score.iloc[0], float)


def test_adapted_prefers_the_users_group(model):
    f = model.recommend(support_frame(), top=5).frame
    top_a = f[f.user_id == "a"].item_id.str[1:].astype(int)
    assert (top_a % N_GROUPS == 0).mean() >= 0.8  # support items i0, i4, i8 are group 0


def test_explanations_and_loss_curves(model):
    recs = model.recommend(support_frame(), top=5, method="adapted")
    expl = recs.frame[recs.frame.user_id == "a"].explanation
    assert all(set(e.split("|")) <= {"i0", "i4", "i8"} for e in expl if e)
    assert len(recs.loss_curves["a"]) == TINY.inner_steps + 1
    assert recs.elapsed_s > 0
    from metarec_core.coldstart.recommend import Ranked

    twice = Ranked(  # a support item bought twice may explain one item from both its places
        np.array([[3, 5]]), np.array([[2.0, 1.0]], np.float32), np.array([[[0, 0], [0, 4]]]), None
    )
    ids = model.catalogue.item_ids
    assert model._frame(["r"], twice, [False]).explanation.tolist() == [
        str(ids[0]),
        f"{ids[0]}|{ids[4]}",
    ]


@pytest.mark.slow
def test_seeds_make_training_reproducible(frames):
    cfg = ColdStartConfig(
        epochs=1, min_steps=0, batch_size=32, dim=8, k_max=4, neighbours=10, device="cpu"
    )
    a = train_model(*frames, cfg, encoder=FakeEncoder())
    b = train_model(*frames, cfg, encoder=FakeEncoder())
    fa = a.recommend(support_frame(), top=10).frame
    fb = b.recommend(support_frame(), top=10).frame
    pd.testing.assert_frame_equal(fa, fb)


def test_save_load_round_trip_and_catalogue_check(model, frames, tmp_path):
    model.save(tmp_path / "m")
    loaded = ColdStartModel.load(tmp_path / "m", device="cpu", items=frames[1])
    for method in ("adapted", "ease", "item-knn"):
        pd.testing.assert_frame_equal(
            loaded.recommend(support_frame(), method=method).frame,
            model.recommend(support_frame(), method=method).frame,
        )
    other = frames[1].iloc[:-1]
    with pytest.raises(ConflictError, match="different catalogue"):
        ColdStartModel.load(tmp_path / "m", device="cpu", items=other)


def test_load_errors(tmp_path):
    with pytest.raises(MetaRecError, match="not found"):
        ColdStartModel.load(tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    with pytest.raises(MetaRecError, match="not a cold-start model"):
        ColdStartModel.load(tmp_path / "bad")


def test_corrupt_weights_are_reported(model, tmp_path):
    d = model.save(tmp_path / "m")
    (d / "weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(MetaRecError, match="corrupt"):
        ColdStartModel.load(d, device="cpu")


def test_bad_support_input(model):
    with pytest.raises(ValidationError, match="no rows"):
        model.recommend(pd.DataFrame({"user_id": [], "item_id": []}))
    with pytest.raises(ValidationError, match="need columns"):
        model.recommend(pd.DataFrame({"who": ["a"], "what": ["i1"]}))
    with pytest.raises(ValidationError, match="unknown method"):
        model.recommend(support_frame(), method="magic")


def test_config_validation():
    with pytest.raises(ValidationError):
        ColdStartConfig(k=0)
    with pytest.raises(ValidationError):
        ColdStartConfig(k_min=5, k_max=2)
    with pytest.raises(ValidationError):
        ColdStartConfig(inner_lr=-1.0)
    cfg = ColdStartConfig(k=5)
    assert ColdStartConfig.from_dict(cfg.to_dict() | {"unknown": 1}) == cfg


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_and_cpu_side_results(frames, tmp_path):
    cfg = ColdStartConfig(epochs=1, batch_size=32, dim=8, k_max=4, neighbours=10, device="cuda")
    m = train_model(*frames, cfg, encoder=FakeEncoder())
    recs = m.recommend(support_frame(), top=5)
    assert recs.frame.score.dtype == np.float64
    m.save(tmp_path / "m")
    cpu = ColdStartModel.load(tmp_path / "m", device="cpu")
    assert (
        cpu.recommend(support_frame(), top=5).frame.user_id.tolist() == recs.frame.user_id.tolist()
    )


@pytest.mark.slow
def test_without_validation_users_the_last_epoch_is_kept():
    # 90 users are too few for a validation split (a fifth is 18 < 20): training must keep its
    # final weights, and the inner loop is left as meta-training learned it.
    model = train_model(*tiny_frames(n_users=90), TINY, encoder=FakeEncoder())
    assert model.report["n_val_users"] == 0
    assert model.report["meta"]["best_epoch"] == TINY.epochs
    assert model.report["meta"]["adaptation"]["scale"] == 1.0


def test_small_logs_hold_out_a_fifth_of_users_for_validation(model):
    assert model.report["n_val_users"] == 24  # 120 users: a fifth, not 5% (6 would be too few)
    assert model.report["n_train_users"] == 96


@pytest.mark.slow
def test_training_stops_when_validation_stalls():
    from metarec_core.coldstart.train import stalled

    assert not stalled([], 1)
    assert not stalled([0.1, 0.2], 1)
    assert stalled([0.1, 0.3, 0.2], 1)
    assert not stalled([0.1, 0.3, 0.2], 2)
    assert stalled([0.3, 0.2, 0.25], 2)


def test_size_factor_scales_the_inner_rates(model):
    from metarec_core.coldstart.recommend import rank_users

    net = model.meta
    saved = net.log_lr_n.detach().clone()
    try:
        with torch.no_grad():
            net.log_lr_n.fill_(-30.0)  # factor ~0: adaptation cannot move the user
        supports = [np.array([0, 4, 8]), np.array([1])]
        adapted = rank_users(model, supports, "adapted", 10)
        frozen = rank_users(model, supports, "no-adapt", 10)
        assert np.array_equal(adapted.items, frozen.items)
        np.testing.assert_allclose(adapted.scores, frozen.scores, rtol=1e-5, atol=1e-5)
        with torch.no_grad():
            net.log_lr_n.fill_(1.0)
        moved = rank_users(model, supports, "adapted", 10)
        assert not np.allclose(moved.scores, frozen.scores)
    finally:
        with torch.no_grad():
            net.log_lr_n.copy_(saved)


@pytest.mark.slow
def test_max_steps_bounds_training(frames):
    import dataclasses

    capped = dataclasses.replace(TINY, epochs=3, max_steps=5)  # 4 batches an epoch: 12 uncapped
    model = train_model(*frames, capped, encoder=FakeEncoder())
    assert len(model.report["meta"]["loss"]) == 5
    assert len(model.report["pretrained"]["loss"]) == 5
    assert len(model.report["meta"]["val_ndcg10"]) == 2  # one full epoch and a partial one


@pytest.mark.slow
def test_adaptation_that_loses_on_validation_is_switched_off(frames):
    from metarec_core.coldstart.data import user_sequences
    from metarec_core.coldstart.episodes import sample_episode
    from metarec_core.coldstart.recommend import rank_users
    from metarec_core.coldstart.validation import check_adaptation

    model = train_model(*frames, TINY, encoder=FakeEncoder())
    _, seqs, _ = user_sequences(frames[0], model.catalogue.index())
    val = [sample_episode(s, 2, 0, 100) for s in seqs[:40]]
    net, cfg = model.meta, model.config
    with torch.no_grad():  # absurd inner rates: adaptation wrecks the ranking
        net.log_lr_d.fill_(8.0)
        net.log_lr_c.fill_(8.0)
    supports = [np.array([0, 4]), np.array([1, 5, 9])]
    assert not np.array_equal(
        rank_users(model, supports, "adapted", 10).items,
        rank_users(model, supports, "no-adapt", 10).items,
    )
    verdict = check_adaptation(net, val, None, cfg, model.device)
    assert verdict["kept"] is False and verdict["val_adapted"] < verdict["val_no_adapt"]
    assert verdict["scale"] == 0.0 and verdict["scale_by_size"] == [0.0] * 5  # k_max 4: 5 sizes
    checked = [g for g in verdict["groups"] if "val_by_scale" in g]
    assert [g["k"] for g in checked] == [1, 3, 5]  # one size per group; the model's own k for its
    assert all(set(g["val_by_scale"]) == {"1.0", "0.5", "0.25", "0.0"} for g in checked)
    np.testing.assert_allclose(
        rank_users(model, supports, "adapted", 10).scores,
        rank_users(model, supports, "no-adapt", 10).scores,
        rtol=1e-5,
        atol=1e-5,
    )
    assert check_adaptation(net, val, None, cfg, model.device)["kept"] is True  # a tie keeps it


@pytest.mark.slow
def test_the_inner_step_is_chosen_per_group_of_support_sizes(frames):
    from metarec_core.coldstart.data import user_sequences
    from metarec_core.coldstart.episodes import sample_episode
    from metarec_core.coldstart.validation import check_adaptation

    model = train_model(*frames, TINY, encoder=FakeEncoder())
    _, seqs, _ = user_sequences(frames[0], model.catalogue.index())
    val = [sample_episode(s, 3, 0, 100) for s in seqs[:40]]
    net = model.meta
    with torch.no_grad():  # absurd inner rates, but only from 4 support items on
        net.log_lr_d.fill_(8.0)
        net.log_lr_c.fill_(8.0)
        net.log_lr_n[:3].fill_(-30.0)  # 1-3 items: the loop does not move (a tie: kept)
    verdict = check_adaptation(net, val, None, model.config, model.device)
    assert verdict["scale_by_size"] == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert verdict["kept"] is True and verdict["scale"] == 1.0  # the model's own k is 3


def test_adaptation_note_tells_people_what_training_did_to_the_inner_loop():
    from types import SimpleNamespace

    from metarec_core.services.coldstart_lab import adaptation_note

    def model(verdict):
        return SimpleNamespace(report={"meta": {"adaptation": verdict}})

    off = model({"scale": 0.0, "val_adapted": 0.1, "val_no_adapt": 0.2})
    assert "switched it off" in adaptation_note(off)
    assert adaptation_note(off, "no-adapt") == ""  # only the adapted method is concerned
    assert "0.5×" in adaptation_note(model({"scale": 0.5}))
    assert adaptation_note(model({"scale": 1.0})) == ""
    assert adaptation_note(model({"kept": True})) == ""  # models trained before scales existed
    assert adaptation_note(SimpleNamespace(report={})) == ""
    by_size = model({"scale": 1.0, "scale_by_size": [1.0, 0.5, 0.5, 0.0]})
    assert adaptation_note(by_size, n_support=1) == ""
    assert "0.5×" in adaptation_note(by_size, n_support=2)
    assert "switched it off" in adaptation_note(by_size, n_support=9)  # beyond: the last size


def test_support_ids_written_as_floats_and_dates_as_order():
    from metarec_core.coldstart.model import parse_support

    index = {"1": 0, "2": 1, "3": 2}
    floats = pd.DataFrame({"user_id": [7.0, 7.0, 8.0], "item_id": [1.0, 2.0, 3.0]})
    users, rows, _ = parse_support(floats, index)  # e.g. a Parquet file's float ids
    assert users == ["7", "8"] and [r.tolist() for r in rows] == [[0, 1], [2]]
    dated = pd.DataFrame(
        {
            "user_id": ["u", "u", "u", "u"],
            "item_id": ["3", "1", "3", "2"],
            "timestamp": ["2014-03-05 10:00", "2014-03-01", "2014-03-04", "2014-03-02"],
        }
    )
    users, rows, _ = parse_support(dated, index)
    assert [r.tolist() for r in rows] == [[0, 1, 2, 2]]  # by date; item 3 bought twice
    with pytest.raises(ValidationError, match="'timestamp' has 1 value"):
        parse_support(
            dated.assign(timestamp=["2014-03-01", "soon", "2014-03-04", "2014-03-02"]), index
        )
