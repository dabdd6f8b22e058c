"""CLI round trip for new categories: train-categories -> classify, output format and errors."""

from __future__ import annotations

import pandas as pd
import pytest

from metarec_core.cli import main

CATS = {
    "fruit": ["banana", "apple", "mango", "pear", "orange", "kiwi"],
    "dairy": ["milk", "yogurt", "cheese", "butter", "cream", "kefir"],
    "soap": ["hand soap", "body wash", "bar soap", "shower gel", "foam soap", "soap refill"],
    "bread": ["bagel", "sourdough", "baguette", "rye bread", "brioche", "pita"],
    "pasta": ["spaghetti", "penne", "fusilli", "lasagna", "macaroni", "linguine"],
    "pets": ["dog food", "cat litter", "dog treats", "cat food", "bird seed", "fish flakes"],
}


@pytest.fixture()
def files(tmp_path, monkeypatch):
    monkeypatch.setenv("METAREC_DATA_DIR", str(tmp_path / "data"))
    rows = [(f"{c}{i}", f"organic {t} pack", c) for c in CATS for i, t in enumerate(CATS[c])]
    items = pd.DataFrame(rows, columns=["item_id", "name", "aisle"])
    items.to_csv(tmp_path / "items.csv", index=False)
    support = pd.DataFrame(
        [
            ("s1", "green apple", "fresh fruit"),
            ("s2", "banana bunch", "fresh fruit"),
            ("s3", "whole milk", "milk & co"),
            ("s4", "skim milk", "milk & co"),
        ],
        columns=["item_id", "title", "category"],
    )
    support.to_csv(tmp_path / "support.csv", index=False)
    pd.DataFrame(
        {"item_id": ["q1", "q2", "q3"], "name": ["apple slices", "milk 2%", ""], "extra": [1, 2, 3]}
    ).to_csv(tmp_path / "query.csv", index=False)
    return tmp_path


def _run(*argv: str) -> int:
    return main(list(argv))


@pytest.mark.slow
def test_round_trip(files, capsys):
    model = files / "model"
    rc = _run(
        "train-categories",
        "--items",
        str(files / "items.csv"),
        "--category-column",
        "aisle",
        "--out",
        str(model),
        "--text-column",
        "name",
        "--episodes",
        "30",
        "--encoder",
        "fake",
    )
    err = capsys.readouterr().err
    assert rc == 0, err
    # 6 categories: none can be held back to check a learned projection, so none is kept
    assert "cannot be checked on held-back categories with 6" in err
    assert {p.name for p in model.iterdir()} >= {"config.json", "training_report.json"}
    assert not (model / "projection.safetensors").exists()
    out = files / "preds.csv"
    rc = _run(
        "classify",
        "--support",
        str(files / "support.csv"),
        "--query",
        str(files / "query.csv"),
        "--out",
        str(out),
        "--model",
        str(model),
        "--open-set",
    )
    err = capsys.readouterr().err
    assert rc == 0, err
    assert f"trained model at {model}" in err
    assert "skipped rows with empty titles: 0 support, 1 query" in err
    preds = pd.read_csv(out, dtype={"item_id": str})
    assert list(preds.columns) == ["item_id", "category", "confidence"]
    assert preds["item_id"].tolist() == ["q1", "q2"]
    assert preds["confidence"].between(0, 1).all()


@pytest.mark.slow
def test_default_model_is_used_when_present(files, capsys):
    out = files / "preds.csv"
    args = (
        "classify",
        "--support",
        str(files / "support.csv"),
        "--query",
        str(files / "query.csv"),
        "--out",
        str(out),
        "--encoder",
        "fake",
    )
    assert _run(*args) == 0
    err = capsys.readouterr().err
    assert "model: encoder prototypes without meta-training (no trained model)" in err
    assert "train-categories --default" in err
    assert (
        _run(
            "train-categories",
            "--items",
            str(files / "items.csv"),
            "--category-column",
            "aisle",
            "--default",
            "--episodes",
            "10",
            "--encoder",
            "fake",
        )
        == 0
    )
    capsys.readouterr()
    assert _run(*args) == 0
    assert "categories-default" in capsys.readouterr().err
    preds = pd.read_csv(out)
    assert set(preds["category"]) <= {"fresh fruit", "milk & co"}


@pytest.mark.parametrize(
    "support_rows, query_rows, message",
    [
        ([("s1", "apple", "fruit"), ("s2", "milk", "")], [("q1", "pear")], "empty category"),
        (
            [("s1", "apple", "fruit"), ("s2", "milk", "dairy")],
            [("s1", "pear")],
            "both support and query",
        ),
        ([("s1", "apple", "fruit"), ("s2", "", "dairy")], [("q1", "pear")], "fewer than 1 example"),
        ([("s1", "apple", "fruit"), ("s2", "pear", "fruit")], [("q1", "kiwi")], "--open-set"),
    ],
)
def test_bad_input_one_line(files, capsys, support_rows, query_rows, message):
    pd.DataFrame(support_rows, columns=["item_id", "title", "category"]).to_csv(
        files / "s.csv", index=False
    )
    pd.DataFrame(query_rows, columns=["item_id", "title"]).to_csv(files / "q.csv", index=False)
    rc = _run(
        "classify",
        "--support",
        str(files / "s.csv"),
        "--query",
        str(files / "q.csv"),
        "--out",
        str(files / "p.csv"),
        "--encoder",
        "fake",
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and message in err


def test_unknown_columns(files, capsys):
    rc = _run(
        "train-categories",
        "--items",
        str(files / "items.csv"),
        "--category-column",
        "department",
        "--out",
        str(files / "m"),
        "--encoder",
        "fake",
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "no column 'department'" in err and len(err.splitlines()) == 1
    pd.DataFrame({"id_x": [1], "title": ["a"]}).to_csv(files / "q.csv", index=False)
    rc = _run(
        "classify",
        "--support",
        str(files / "support.csv"),
        "--query",
        str(files / "q.csv"),
        "--out",
        str(files / "p.csv"),
        "--encoder",
        "fake",
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "missing column item_id" in err


def test_lazy_encoder_loads_nothing_until_a_text_is_missing(monkeypatch):
    from metarec_core.embed import service

    def boom(name):
        raise AssertionError("the model must not load")

    monkeypatch.setattr(service, "get_encoder", boom)
    enc = service.lazy_encoder("minilm")
    assert (enc.model_id, enc.dim) == ("all-MiniLM-L6-v2", 384)


def test_one_category_with_the_open_set(files, capsys):
    rows = [(f"f{i}", f"organic {t} pack", "fruit") for i, t in enumerate(CATS["fruit"][:3])]
    pd.DataFrame(rows, columns=["item_id", "title", "category"]).to_csv(
        files / "s1.csv", index=False
    )
    others = [(f"q{c}{i}", f"organic {t} pack") for c in CATS for i, t in enumerate(CATS[c])]
    pd.DataFrame(others[3:], columns=["item_id", "title"]).to_csv(files / "q1.csv", index=False)
    out = files / "p1.csv"
    argv = ["--support", str(files / "s1.csv"), "--query", str(files / "q1.csv"), "--out", str(out)]
    rc = _run("classify", *argv, "--open-set", "--encoder", "fake")
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "into 1 category" in err and "open set: threshold" in err
    preds = pd.read_csv(out, dtype={"item_id": str})
    assert len(preds) == len(others) - 3
    assert set(preds["category"].dropna()) <= {"fruit"}
    assert preds["confidence"].between(0, 1).all()


def test_a_catalogue_of_empty_titles_says_so():
    from metarec_core.categories.train import prepare_items
    from metarec_core.errors import ValidationError

    items = pd.DataFrame({"name": ["", None, " "] * 4, "aisle": list("abcdef") * 2})
    with pytest.raises(ValidationError, match="found 0 in column 'aisle'; 12 labelled product"):
        prepare_items(items, "aisle", "name")
