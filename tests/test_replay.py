"""Step-by-step recommendations: the replay service and ``recommend --steps`` on a tiny model."""

from __future__ import annotations

import pandas as pd
import pytest

from metarec_core.cli import main

N_ITEMS, N_GROUPS = 40, 4


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(autouse=True)
def fake_encoder(monkeypatch):
    from metarec_core.embed import registry

    monkeypatch.setattr(registry, "default_encoder_name", lambda device="auto": "fake")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny model trained through the CLI: 80 users who each stay inside one of 4 groups."""
    from metarec_core.embed import registry

    tmp = tmp_path_factory.mktemp("replay")
    rows = []
    for u in range(80):
        pool = [i for i in range(N_ITEMS) if i % N_GROUPS == u % N_GROUPS]
        rows += [(f"u{u}", f"i{i}", p) for p, i in enumerate(pool[u % 3 : u % 3 + 6])]
    pd.DataFrame(rows, columns=["user_id", "item_id", "position"]).to_csv(
        tmp / "t.csv", index=False
    )
    items = pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(N_ITEMS)],
            "title": [f"group{i % N_GROUPS} product {i}" for i in range(N_ITEMS)],
            "category": [f"group{i % N_GROUPS}" for i in range(N_ITEMS)],
        }
    )
    items.to_csv(tmp / "items.csv", index=False)
    mp = pytest.MonkeyPatch()
    mp.setattr(registry, "default_encoder_name", lambda device="auto": "fake")
    code = main(
        ["train", "--interactions", str(tmp / "t.csv"), "--items", str(tmp / "items.csv"),
         "--out", str(tmp / "model"), "--k", "2", "--device", "cpu", "--epochs", "1"]
    )  # fmt: skip
    mp.undo()
    assert code == 0
    return tmp / "model"


def test_recommend_steps_writes_one_list_per_user_and_step(tmp_path, model_dir, capsys):
    support = pd.DataFrame(
        {
            "user_id": ["new1", "new1", "new2", "new3", "new1"],
            "item_id": ["i4", "i0", "i1", "not-in-catalogue", "i8"],
            "position": [1, 0, 0, 0, 2],
        }
    )
    support.to_csv(tmp_path / "s.csv", index=False)
    out = tmp_path / "steps.csv"
    code, _, err = run(
        capsys, "recommend", "--model", str(model_dir), "--support", str(tmp_path / "s.csv"),
        "--top", "5", "--out", str(out), "--steps", "0-3", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    assert "fewer support items than step 3" in err and "skipped 1 support row" in err
    recs = pd.read_csv(out)
    assert list(recs.columns[:4]) == ["user_id", "step", "rank", "item_id"]
    steps = recs.groupby("user_id")["step"].unique().map(sorted).to_dict()
    assert steps == {"new1": [0, 1, 2, 3], "new2": [0, 1], "new3": [0]}
    step0 = recs[recs.step == 0].groupby("user_id")["item_id"].apply(list)
    assert step0["new1"] == step0["new2"] == step0["new3"]  # no history yet: bestsellers
    assert recs[recs.step == 0].fallback.all() and not recs[recs.step > 0].fallback.any()
    # step 2 of new1 is exactly what recommend gives for its first two actions (i0, i4)
    from metarec_core.coldstart.model import ColdStartModel

    model = ColdStartModel.load(model_dir, device="cpu")
    first_two = pd.DataFrame({"user_id": ["x", "x"], "item_id": ["i0", "i4"], "position": [0, 1]})
    plain = model.recommend(first_two, top=5).frame["item_id"].tolist()
    assert recs[(recs.user_id == "new1") & (recs.step == 2)]["item_id"].tolist() == plain
    assert not {"i0", "i4"} & set(recs[(recs.user_id == "new1") & (recs.step == 2)]["item_id"])


@pytest.mark.parametrize("steps", ["5-2", "x", "0-11", "-1"])
def test_recommend_steps_rejects_bad_ranges_in_one_line(tmp_path, model_dir, capsys, steps):
    pd.DataFrame({"user_id": ["a"], "item_id": ["i0"]}).to_csv(tmp_path / "s.csv", index=False)
    code, _, err = run(
        capsys, "recommend", "--model", str(model_dir), "--support", str(tmp_path / "s.csv"),
        "--out", str(tmp_path / "r.csv"), f"--steps={steps}",
    )  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and "--steps" in err


def test_replay_tracks_changes_hits_and_purchases(model_dir):
    from metarec_core.coldstart.model import ColdStartModel
    from metarec_core.services.replay import replay

    model = ColdStartModel.load(model_dir, device="cpu")
    items = pd.read_csv(model_dir.parent / "items.csv")
    history = ["i0", "i4", "i8", "i12", "i16", "i20"]
    rp = replay(model, items, history, steps=4, top=8, user="u-test")
    assert [f.step for f in rp.frames] == [0, 1, 2, 3, 4] and not rp.note
    assert rp.history["item_id"].tolist() == history[:4]
    for before, after in zip(rp.frames, rp.frames[1:], strict=False):
        ranks = dict(zip(before.recs["item_id"], before.recs["rank"], strict=True))
        for item, rank, change in after.recs[["item_id", "rank", "change"]].itertuples(False):
            expected = "new" if item not in ranks else ranks[item] - rank
            assert change == (
                expected if expected == "new" else "=" if expected == 0 else
                f"▲{expected}" if expected > 0 else f"▼{-expected}"
            )  # fmt: skip
        assert after.hits_so_far == before.hits_so_far + int(bool(before.next_in_list))
        later = set(history[after.step :])
        assert after.recs["bought_later"].tolist() == after.recs["item_id"].isin(later).tolist()
        assert not set(history[: after.step]) & set(after.recs["item_id"])
    assert rp.frames[1].action == "group0 product 0"
    assert list(rp.summary()["step"]) == [0, 1, 2, 3, 4]
    assert len(rp.table()) == 5 * 8


def test_replay_bad_input(model_dir):
    from metarec_core.coldstart.model import ColdStartModel
    from metarec_core.errors import ValidationError
    from metarec_core.services.replay import replay

    model = ColdStartModel.load(model_dir, device="cpu")
    items = pd.read_csv(model_dir.parent / "items.csv")
    with pytest.raises(ValidationError, match="at least one item"):
        replay(model, items, [])
    with pytest.raises(ValidationError, match="between 0 and 10"):
        replay(model, items, ["i0"], steps=11)
    rp = replay(model, items, ["nope", "i0", "gone"])
    assert rp.skipped == 2 and len(rp.frames) == 2 and "stops at step 1" in rp.note
    rp = replay(model, items, ["nope"])
    assert [f.step for f in rp.frames] == [0] and "has 0 known actions" in rp.note
