"""CLI round trip of the cold-start commands on a tiny dataset: train, recommend, evaluate, errors."""

from __future__ import annotations

import json

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
    """The packaged MiniLM is exercised by the slow tests; here the hashed encoder keeps it fast
    (the commands' default encoder, whatever this process imported before)."""
    from metarec_core.embed import registry

    monkeypatch.setattr(registry, "default_encoder_name", lambda device="auto": "fake")


@pytest.fixture
def files(tmp_path):
    """train.csv.gz (timestamps), items.csv (title + brand), support.csv for three new users."""
    rows = []
    for u in range(80):
        pool = [i for i in range(N_ITEMS) if i % N_GROUPS == u % N_GROUPS]
        for p, i in enumerate(pool[u % 3 : u % 3 + 6]):
            rows.append((f"u{u}", f"i{i}", 1000 + 10 * p))
    train = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    items = pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(N_ITEMS)],
            "title": [f"group{i % N_GROUPS} product {i}" for i in range(N_ITEMS)],
            "brand": [f"brand{i % N_GROUPS}" for i in range(N_ITEMS)],
        }
    )
    support = pd.DataFrame(
        {
            "user_id": ["new1", "new1", "new2", "new3"],
            "item_id": ["i0", "i4", "i1", "not-in-catalogue"],
            "position": [0, 1, 0, 0],
        }
    )
    paths = {
        "train": tmp_path / "train.csv.gz",
        "items": tmp_path / "items.csv",
        "support": tmp_path / "support.csv",
    }
    train.to_csv(paths["train"], index=False, compression="gzip")
    items.to_csv(paths["items"], index=False)
    support.to_csv(paths["support"], index=False)
    return paths


def _train(capsys, files, out) -> None:
    code, text, err = run(
        capsys, "train", "--interactions", str(files["train"]), "--items", str(files["items"]),
        "--out", str(out), "--k", "2", "--device", "cpu", "--seed", "0", "--epochs", "1",
    )  # fmt: skip
    assert code == 0, err
    assert "model written to" in text


@pytest.mark.slow
def test_train_recommend_round_trip(tmp_path, files, capsys):
    model_dir = tmp_path / "model"
    _train(capsys, files, model_dir)
    for name in ("config.json", "weights.safetensors", "items.parquet", "training_report.json"):
        assert (model_dir / name).exists()
    recs_path = tmp_path / "recs.csv"
    code, _, err = run(
        capsys, "recommend", "--model", str(model_dir), "--support", str(files["support"]),
        "--top", "5", "--out", str(recs_path), "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    assert "skipped 1 support row" in err and "1 user(s) had no known support item" in err
    recs = pd.read_csv(recs_path)
    assert list(recs.columns[:4]) == ["user_id", "rank", "item_id", "score"]
    assert set(recs.user_id) == {"new1", "new2", "new3"}
    assert recs.groupby("user_id")["rank"].apply(list).map(lambda r: r == [1, 2, 3, 4, 5]).all()
    assert not {"i0", "i4"} & set(recs[recs.user_id == "new1"].item_id)
    assert recs[recs.user_id == "new3"].fallback.all()
    assert not recs[recs.user_id == "new1"].fallback.any()
    code, _, err = run(
        capsys, "recommend", "--model", str(model_dir), "--support", str(files["support"]),
        "--top", "5", "--out", str(tmp_path / "before.csv"), "--no-adapt", "--device", "cpu",
    )  # fmt: skip
    assert code == 0 and err.startswith("no-adapt:")


def test_recommend_errors_are_one_line(tmp_path, files, capsys):
    model_dir = tmp_path / "model"
    _train(capsys, files, model_dir)
    base = ["recommend", "--model", str(model_dir), "--out", str(tmp_path / "r.csv")]
    bad_cols = tmp_path / "bad.csv"
    pd.DataFrame({"who": ["a"], "what": ["i1"]}).to_csv(bad_cols, index=False)
    empty = tmp_path / "empty.csv"
    empty.write_text("user_id,item_id\n")
    cases = [
        (["--support", str(bad_cols)], "need columns user_id and item_id"),
        (["--support", str(empty)], "no rows"),
        (["--support", str(files["support"]), "--method", "magic"], "unknown method"),
        (["--support", str(tmp_path / "missing.csv")], "file not found"),
    ]
    for extra, message in cases:
        code, _, err = run(capsys, *base, *extra)
        assert code == 2 and err.count("\n") == 1 and message in err, (extra, err)
    code, _, err = run(
        capsys, "recommend", "--model", str(tmp_path / "nope"), "--support",
        str(files["support"]), "--out", str(tmp_path / "r.csv"),
    )  # fmt: skip
    assert code == 2 and "model directory not found" in err


def test_train_rejects_unknown_columns(tmp_path, files, capsys):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"customer": ["a"], "thing": ["i1"]}).to_csv(bad, index=False)
    code, _, err = run(
        capsys, "train", "--interactions", str(bad), "--items", str(files["items"]),
        "--out", str(tmp_path / "m"),
    )  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and "user_id" in err


@pytest.mark.slow
def test_evaluate_writes_a_report(tmp_path, files, capsys):
    folder = tmp_path / "ds"
    folder.mkdir()
    pd.read_csv(files["train"]).to_csv(folder / "interactions.csv", index=False)
    pd.read_csv(files["items"]).to_csv(folder / "items.csv", index=False)
    out = tmp_path / "report.json"
    code, text, err = run(
        capsys, "--db", str(tmp_path / "s.duckdb"), "evaluate", "--dataset", str(folder),
        "--k", "1,2", "--seeds", "0", "--methods", "adapted,no-adapt,popularity,ease",
        "--out", str(out), "--device", "cpu", "--epochs", "2",
    )  # fmt: skip
    assert code == 0, err
    assert "NDCG@10" in text and "one seed: no interval" in text and "±" not in text
    report = json.loads(out.read_text())
    got = {(r["method"], r["k"]) for r in report["results"]}
    assert got == {(m, k) for m in ("adapted", "no-adapt", "popularity", "ease") for k in (1, 2)}
    assert all(0.0 <= r["ndcg@10"] <= 1.0 for r in report["results"])
    assert "adapted minus each method" in text
    paired = {(r["other"], r["k"]) for r in report["paired"]}
    assert paired == {(m, k) for m in ("no-adapt", "popularity", "ease") for k in (1, 2)}


@pytest.mark.slow
def test_parquet_inputs_with_integer_ids_and_a_name_column(tmp_path, capsys):
    rows = [(u, i, p) for u in range(60) for p, i in enumerate(range(u % 4, 40, 4)[:6])]
    train = pd.DataFrame(rows, columns=["user_id", "item_id", "position"])
    items = pd.DataFrame({"item_id": range(40), "name": [f"thing {i % 4} {i}" for i in range(40)]})
    support = pd.DataFrame({"user_id": [7, 7, 8], "item_id": [0, 4, 1]})  # no position column
    for frame, name in ((train, "train"), (items, "items"), (support, "support")):
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
    model_dir, recs = tmp_path / "model", tmp_path / "recs.csv"
    code, _, err = run(
        capsys, "train", "--interactions", str(tmp_path / "train.parquet"),
        "--items", str(tmp_path / "items.parquet"), "--out", str(model_dir),
        "--device", "cpu", "--epochs", "1",
    )  # fmt: skip
    assert code == 0, err
    code, _, err = run(
        capsys, "recommend", "--model", str(model_dir), "--support",
        str(tmp_path / "support.parquet"), "--top", "10", "--out", str(recs), "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    out = pd.read_csv(recs)
    assert len(out) == 20 and set(out.user_id) == {7, 8}
    assert not {0, 4} & set(out[out.user_id == 7].item_id)


@pytest.mark.slow
def test_cli_models_join_the_apps_registry_and_the_models_command(tmp_path, files, capsys):
    from metarec_core.services import list_models

    model_dir = tmp_path / "registered"
    _train(capsys, files, model_dir)
    listed = {m.path: m for m in list_models()}
    info = listed[model_dir.resolve()]
    assert info.kind == "coldstart" and info.n_items == N_ITEMS and info.dataset == ""
    assert info.meta["config"]["k"] == 2 and info.meta["source"] == "command line"
    code, text, err = run(capsys, "models", "--kind", "coldstart")
    assert code == 0, err
    line = next(row for row in text.splitlines() if str(model_dir.resolve()) in row)
    assert line.split()[:3] == ["registered", "coldstart", "-"] and f"{N_ITEMS}" in line.split()
    assert text.splitlines()[0].split() == ["name", "kind", "dataset", "created", "items", "path"]


def test_a_log_whose_items_the_catalogue_lacks_and_a_folder_as_out_are_named(
    tmp_path, files, capsys
):
    log = pd.read_csv(files["train"]).assign(item_id=lambda d: "0" + d["item_id"])
    log.to_csv(tmp_path / "padded.csv", index=False)
    code, _, err = run(
        capsys, "train", "--interactions", str(tmp_path / "padded.csv"),
        "--items", str(files["items"]), "--out", str(tmp_path / "m"), "--device", "cpu",
    )  # fmt: skip
    assert code == 2 and f"{len(log):,} of {len(log):,} rows name an item_id" in err
    assert "e.g. 0i" in err and "Traceback" not in err
    folder = tmp_path / "recs"
    folder.mkdir()
    code, _, err = run(
        capsys, "recommend", "--model", str(tmp_path / "none"), "--support",
        str(files["support"]), "--out", str(folder),
    )  # fmt: skip
    assert code == 2 and "is a folder" in err
