"""CLI round trip for the data commands: import, datasets, sql, demo --if-missing, errors."""

from __future__ import annotations

import pytest

from metarec_core.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_import_list_and_query(tmp_path, tiny_files, capsys):
    db = str(tmp_path / "s.duckdb")
    code, out, _ = run(
        capsys,
        "--db", db, "import", "--name", "shop",
        "--interactions", str(tiny_files["interactions"]),
        "--items", str(tiny_files["items"]),
        "--users", str(tiny_files["users"]),
        "--order-col", "timestamp",
        "--category-col", "category",
    )  # fmt: skip
    assert code == 0 and "imported shop: 3 users, 5 items, 6 interactions" in out
    code, out, _ = run(capsys, "--db", db, "datasets")
    assert code == 0 and "shop" in out and "timestamp" in out
    code, out, _ = run(
        capsys, "--db", db, "sql", "SELECT category, count(*) AS n FROM items GROUP BY 1 "
        "ORDER BY 1", "--dataset", "shop",
    )  # fmt: skip
    assert code == 0 and "dairy" in out and "-- 2 row(s)" in out


def test_errors_are_one_line_with_exit_2(tmp_path, tiny_files, capsys):
    db = str(tmp_path / "s.duckdb")
    args = ["--db", db, "import", "--name", "shop", "--interactions",
            str(tiny_files["interactions"]), "--items", str(tiny_files["items"])]  # fmt: skip
    assert run(capsys, *args)[0] == 0
    code, _, err = run(capsys, *args)
    assert code == 2 and err.count("\n") == 1 and "already exists" in err
    assert run(capsys, *args, "--replace")[0] == 0
    code, _, err = run(capsys, "--db", db, "sql", "DELETE FROM shop.items")
    assert code == 2 and err.startswith("error: only read-only SELECT")
    code, _, err = run(capsys, "--db", db, "import", "--name", "x")
    assert code == 2 and "--interactions, --items" in err
    code, _, err = run(capsys, "--db", db, "import", "--name", "x", "--interactions",
                       str(tmp_path / "nope.csv"), "--items", str(tiny_files["items"]))  # fmt: skip
    assert code == 2 and "file not found" in err


def test_datasets_on_a_fresh_store(tmp_path, capsys):
    code, out, _ = run(capsys, "--db", str(tmp_path / "new.duckdb"), "datasets")
    assert code == 0 and "no datasets yet" in out
    assert not (tmp_path / "new.duckdb").exists()


def test_demo_if_missing_is_a_quick_no_op(tmp_path, tiny_files, capsys):
    db = str(tmp_path / "s.duckdb")
    run(capsys, "--db", db, "import", "--name", "ml-100k", "--interactions",
        str(tiny_files["interactions"]), "--items", str(tiny_files["items"]))  # fmt: skip
    code, out, _ = run(capsys, "--db", db, "demo", "--name", "ml-100k", "--if-missing")
    assert code == 0 and "already in the store" in out


@pytest.mark.slow
def test_demo_imports_both_shops_offline(tmp_path, capsys):
    db = str(tmp_path / "s.duckdb")
    code, out, _ = run(capsys, "--db", db, "demo")
    assert code == 0
    code, out, _ = run(capsys, "--db", db, "datasets")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows["beauty-shop"][1:4] == ["22,363", "12,101", "198,502"]
    assert rows["grocery-shop"][1] == "593" and int(rows["grocery-shop"][4]) == 98
    code, out, _ = run(capsys, "--db", db, "demo", "--if-missing")
    assert code == 0 and "already in the store" in out
    code, _, err = run(capsys, "--db", db, "demo", "--name", "shoes")
    assert code == 2 and "unknown demo 'shoes'" in err


@pytest.mark.parametrize("command", ["import", "datasets", "demo", "sql"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0 and "usage: metarec" in capsys.readouterr().out
