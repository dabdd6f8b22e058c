"""Hostile analyst SQL: every attempt is refused with one clear line and the store file is
byte-for-byte unchanged; property-based fuzzing of the guard with hypothesis."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metarec_core.data import queries as Q
from metarec_core.data.importers import import_files
from metarec_core.data.sql_guard import check_select
from metarec_core.data.store import Store
from metarec_core.errors import MetaRecError, ValidationError

# The exploit: a regex comment stripper saw one SELECT; DuckDB saw COMMIT and SET.
DOLLAR_SMUGGLE = (
    "SELECT $$/*$$ AS a, $x$*/ $$ AS c) AS _q; COMMIT; SET GLOBAL memory_limit='777MB'; "
    "SELECT * FROM (SELECT current_setting('memory_limit') AS m --$x$ AS b"
)

REFUSED = [
    # writes, DDL, transactions, settings
    "INSERT INTO items VALUES ('x', 't', 't', 'c', 1.0)",
    "UPDATE items SET title = 'x'",
    "DELETE FROM main.datasets",
    "DROP TABLE items",
    "DROP SCHEMA shop CASCADE",
    "CREATE TABLE t AS SELECT 1",
    "CREATE VIEW v AS SELECT 1",
    "CREATE MACRO m(x) AS x",
    "ALTER TABLE items RENAME TO x",
    "TRUNCATE items",
    "COMMIT",
    "BEGIN TRANSACTION",
    "ROLLBACK",
    "SET memory_limit = '1MB'",
    "SET GLOBAL memory_limit = '1MB'",
    "RESET memory_limit",
    "SET enable_external_access = true",
    "PRAGMA version",
    "PRAGMA memory_limit = '1MB'",
    "/* /* nested */ select */ PRAGMA version",
    "CHECKPOINT",
    "VACUUM",
    "USE memory",
    "CALL pragma_version()",
    "EXPLAIN SELECT 1",
    "EXPLAIN ANALYZE SELECT 1",
    # files and extensions
    "COPY items TO '/tmp/x.csv'",
    "COPY (SELECT 1) TO '/tmp/x.parquet' (FORMAT parquet)",
    "EXPORT DATABASE '/tmp/x'",
    "IMPORT DATABASE '/tmp/x'",
    "ATTACH '/tmp/other.duckdb' AS o",
    "DETACH shop",
    "INSTALL httpfs",
    "LOAD httpfs",
    "FORCE INSTALL httpfs",
    # several statements, however they are hidden
    "SELECT 1; SELECT 2",
    "SELECT 1; DROP TABLE items",
    "SELECT 1;; DELETE FROM main.datasets",
    "SELECT '--'; DELETE FROM main.datasets",
    "SELECT 1 /* ; */ ; SET memory_limit='1MB'",
    "SELECT $$;$$; COMMIT",
    "SELECT $tag$ $$ ; $tag$ AS a; SET threads = 1",
    # CTEs with writes
    "WITH a AS (SELECT 1) INSERT INTO items SELECT * FROM a",
    "WITH a AS (SELECT 1) DELETE FROM items",
    # one huge value (allocated outside DuckDB's memory limit)
    "SELECT repeat('x', 400000000)",
    "SELECT range(400000000)",
    "SELECT generate_series(1, 400000000)",
    "SELECT lpad('x', 400000000, 'y')",
    "SELECT repeat('x', 20000 * 20000)",
    "SELECT printf('%0400000000d', 1)",
    "SELECT list_resize([1], 400000000)",
    "SUMMARIZE SELECT repeat('x', 400000000)",
    # empty and broken
    "",
    "   ",
    "-- only a comment",
    "SELEC 1",
    "SELECT 'unterminated",
]

FILE_READS = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/hostname')",
    "SELECT * FROM '/etc/hostname'",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_parquet('/tmp/x.parquet')",
    "SELECT * FROM read_json_auto('/etc/hostname')",
    "SELECT * FROM query('SET memory_limit=''1MB''')",
]


def digest(path: Path) -> str:
    """The store file's SHA-256 (its WAL too, when one exists)."""
    h = hashlib.sha256(path.read_bytes())
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        h.update(wal.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def store_file(tmp_path_factory) -> Path:
    from conftest import TINY_INTERACTIONS, TINY_ITEMS

    folder = tmp_path_factory.mktemp("hostile-sql")
    (folder / "i.csv").write_text(TINY_INTERACTIONS)
    (folder / "items.csv").write_text(TINY_ITEMS)
    path = folder / "store.duckdb"
    with Store(path) as s:
        import_files(s, "shop", folder / "i.csv", folder / "items.csv")
    return path


@pytest.fixture(params=[False, True], ids=["read-only", "writable"])
def store(request, store_file):
    """The scratch store opened read-only (as the app and the CLI do) and writable (the worst
    case: only the guard and the read-only transaction stand between the analyst and writes)."""
    before = digest(store_file)
    s = Store(store_file, read_only=request.param is False)
    yield s
    s.close()
    assert digest(store_file) == before, "the store file changed"


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text.strip(), f"not one line: {text!r}"
    assert "Traceback" not in text
    return text


@pytest.mark.parametrize("sql", REFUSED)
def test_refused_with_one_line(store, sql):
    with pytest.raises(ValidationError) as info:
        Q.run_analyst_sql(store, sql, dataset="shop")
    _one_line(info.value)


@pytest.mark.parametrize("sql", FILE_READS)
def test_file_functions_find_no_files(store, sql):
    with pytest.raises(ValidationError) as info:
        Q.run_analyst_sql(store, sql, dataset="shop")
    _one_line(info.value)


def test_dollar_strings_cannot_change_settings(store):
    """DuckDB reads the issue's exploit as one SELECT of two dollar-quoted strings, and that
    one statement is what runs: the text after the first ';' is data, never COMMIT or SET."""
    before = store.cursor().execute("SELECT current_setting('memory_limit')").fetchall()
    res = Q.run_analyst_sql(store, DOLLAR_SMUGGLE, dataset="shop")
    assert list(res.frame.columns) == ["a", "b"] and "COMMIT" in res.frame["b"].iloc[0]
    res = Q.run_analyst_sql(store, "SELECT $$/*$$ AS a, $x$; COMMIT; $x$ AS b", dataset="shop")
    assert res.frame.iloc[0].tolist() == ["/*", "; COMMIT; "]
    after = store.cursor().execute("SELECT current_setting('memory_limit')").fetchall()
    assert before == after and "777" not in str(after)


def test_rows_and_bytes_are_capped(store):
    res = Q.run_analyst_sql(store, "SELECT * FROM range(1000000000) t(x)", limit=5)
    assert len(res.frame) == 5 and res.truncated
    with pytest.raises(ValidationError, match="over 1 MB") as info:
        Q.run_analyst_sql(
            store, "SELECT repeat('x', 1000) AS s FROM range(100000)", limit=None, max_bytes=2**20
        )
    _one_line(info.value)


def test_store_has_a_memory_limit(store):
    limit = store.cursor().execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert limit.endswith(("GiB", "MiB")) and float(limit.split()[0]) < 64


def test_reads_still_work(store):
    for sql in (
        "SELECT count(*) AS n FROM interactions",
        "WITH a AS (SELECT * FROM items) SELECT count(*) AS n FROM a",
        "-- leading comment\nSELECT count(*) AS n FROM items /* trailing */ ;",
        "FROM items SELECT count(*) AS n",
        "SELECT count(*) AS n FROM (SELECT repeat('x', 10) FROM items)",
    ):
        res = Q.run_analyst_sql(store, sql, dataset="shop")
        assert int(res.frame["n"].iloc[0]) in (5, 6), sql


# ---- property-based fuzzing of the guard ----------------------------------------------------
_PIECES = st.sampled_from(
    [
        "SELECT 1",
        "SELECT * FROM items",
        ";",
        " ",
        "\n",
        "--",
        "/*",
        "*/",
        "'",
        '"',
        "$$",
        "$x$",
        "(",
        ")",
        "COMMIT",
        "SET memory_limit='1MB'",
        "DELETE FROM main.datasets",
        "DROP TABLE items",
        "PRAGMA version",
        "INSTALL httpfs",
        "COPY items TO '/tmp/f.csv'",
        "ATTACH ':memory:' AS m",
        "WITH a AS (SELECT 1)",
        "AS c",
        "FROM",
        "repeat('x', 400000000)",
        "E'\\''",
    ]
)
_SQL = st.lists(_PIECES, min_size=1, max_size=8).map(" ".join) | st.text(max_size=60)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@pytest.mark.slow
@given(sql=_SQL)
def test_fuzzed_sql_runs_one_read_only_statement_or_is_refused(store_file, sql):
    """Random statements, quotes and comments: either one read-only statement runs or a
    ValidationError comes back; nothing else escapes and the store never changes."""
    before = digest(store_file)
    with Store(store_file) as s:  # writable: the worst case
        try:
            stmt = check_select(sql)
        except ValidationError:
            stmt = None
        if stmt is not None:
            assert stmt.type.name == "SELECT"
        try:
            Q.run_analyst_sql(s, sql, dataset="shop", limit=10, timeout_s=5)
        except ValidationError as exc:
            _one_line(exc)
        limit = s.cursor().execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        n = s.cursor().execute("SELECT count(*) FROM main.datasets").fetchall()[0][0]
    assert n == 1 and not limit.startswith("976.5 KiB")
    assert digest(store_file) == before


# ---- the command line (slow: one process each) ----------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(
        [sys.executable, "-m", "metarec_core", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.mark.slow
def test_cli_runs_the_dollar_exploit_as_one_harmless_select(store_file):
    before = digest(store_file)
    proc = _cli("--db", str(store_file), "sql", "--dataset", "shop", DOLLAR_SMUGGLE)
    assert proc.returncode == 0, proc.stderr
    assert "MiB" not in proc.stdout and "-- 1 row(s)" in proc.stdout
    assert digest(store_file) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT repeat('x', 400000000)",
        "SET GLOBAL memory_limit='1MB'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "DELETE FROM main.datasets",
        "INSTALL httpfs",
    ],
)
def test_cli_sql_refuses_with_one_line(store_file, sql):
    before = digest(store_file)
    proc = _cli("--db", str(store_file), "sql", "--dataset", "shop", sql)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert "741.0 MiB" not in proc.stdout
    assert digest(store_file) == before


@pytest.mark.slow
def test_cli_refuses_a_data_file_as_store(tmp_path, store_file):
    data = tmp_path / "interactions.csv"
    data.write_text("user_id,item_id\nu1,i1\n")
    before = data.read_bytes()
    for db in (data, tmp_path / "new.parquet"):
        args = ["--interactions", str(data), "--items", str(data)]
        proc = _cli("--db", str(db), "import", "--name", "x", *args)
        assert proc.returncode == 2 and "data file" in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert data.read_bytes() == before and not (tmp_path / "new.parquet").exists()


def test_store_refuses_non_duckdb_files(tmp_path):
    for name, content in (("x.csv", b"a,b\n1,2\n"), ("x.duckdb", b"not a database at all....")):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(MetaRecError) as info:
            Store(path)
        _one_line(info.value)
        assert path.read_bytes() == content
    with pytest.raises(MetaRecError, match="data file"):
        Store(tmp_path / "fresh.parquet")
    assert not (tmp_path / "fresh.parquet").exists()
