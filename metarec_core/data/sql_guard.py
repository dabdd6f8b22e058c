"""Analyst SQL: accept exactly one read-only SELECT-like statement, reject everything else.

DuckDB's own parser splits the text into statements and classifies them, and the caller executes
the text of the very ``duckdb.Statement`` that was checked here: no text is rewritten between the
check and the run, so quoting tricks (``$$...$$`` strings, nested comments) cannot make the executed
text differ from the judged one. The first keyword is checked with DuckDB's tokenizer too,
because DuckDB rewrites e.g. ``PRAGMA`` into a SELECT.

Functions that build one huge value from a number (``repeat('x', 400000000)``, the list
``range(400000000)``) allocate outside DuckDB's memory limit, so their size argument must be a
literal no larger than ``MAX_BUILT_VALUE``. The store connection adds the other walls behind this
guard: a READ ONLY transaction, disabled external file access and a memory limit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import duckdb

from metarec_core.errors import ValidationError

ALLOWED_FIRST = ("select", "with", "from", "values", "table", "describe", "show", "summarize", "(")
MAX_BUILT_VALUE = 1_000_000  # characters / list elements one function call may build
# function -> index of its size argument (range/generate_series: see _range_size)
_SIZE_ARGUMENT = {"repeat": 1, "lpad": 1, "rpad": 1, "list_resize": 1, "array_resize": 1}
_RANGE_FUNCTIONS = ("range", "generate_series")
_FORMAT_FUNCTIONS = ("printf", "format")
_WIDE_FORMAT = re.compile(r"\d{7,}")  # a field width of a million characters or more


def check_select(sql: str) -> duckdb.Statement:
    """The single parsed statement of ``sql`` if it is a read-only query, else raise.

    Execute the returned statement's own text (``cursor.sql(stmt.query)``), never a rewrite.
    """
    if not isinstance(sql, str) or not sql.strip():
        raise ValidationError("empty query: write one SELECT statement")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise ValidationError(f"SQL syntax error: {_first_line(exc)}") from exc
    if len(statements) != 1:
        raise ValidationError(
            f"only one statement is allowed, found {len(statements)}; remove the extra ';'"
        )
    stmt = statements[0]  # DuckDB may rewrite its text (PRAGMA -> SELECT): judge the original
    first = _first_keyword(sql)
    if stmt.type != duckdb.StatementType.SELECT or first not in ALLOWED_FIRST:
        kind = first.upper() or str(stmt.type).split(".")[-1]
        raise ValidationError(
            f"only read-only SELECT queries are allowed here (got {kind}); "
            "use SELECT ... / WITH ... SELECT ..."
        )
    _check_value_builders(sql)
    return stmt


def _first_keyword(sql: str) -> str:
    """The first token of ``sql`` as DuckDB's tokenizer sees it (comments skipped), lower case."""
    try:
        tokens = duckdb.tokenize(sql)
    except duckdb.Error:
        return ""
    if not tokens:
        return ""
    match = re.match(r"\(|[A-Za-z_]+", sql[tokens[0][0] :])
    return match.group(0).lower() if match else ""


def _check_value_builders(sql: str) -> None:
    """Refuse calls that would build one value over MAX_BUILT_VALUE (see the module docstring)."""
    con = duckdb.connect(config={"enable_external_access": False})
    try:
        tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    except duckdb.Error as exc:
        raise ValidationError(f"SQL syntax error: {_first_line(exc)}") from exc
    finally:
        con.close()
    if tree.get("error"):
        raise ValidationError(f"SQL not supported here: {tree.get('error_message', '')[:200]}")
    for name, args in _scalar_calls(tree):
        problem = _size_problem(name, args)
        if problem:
            raise ValidationError(
                f"{name}() {problem}: one value may hold at most {MAX_BUILT_VALUE:,} "
                "characters or elements"
            )


def _scalar_calls(node: object, table_function: bool = False) -> Iterator[tuple[str, list]]:
    """(function name, argument nodes) of every scalar function call in a serialized query."""
    if isinstance(node, list):
        for child in node:
            yield from _scalar_calls(child)
    elif isinstance(node, dict):
        if node.get("class") == "FUNCTION" and not table_function:
            yield str(node.get("function_name", "")).lower(), list(node.get("children") or [])
        for key, child in node.items():
            yield from _scalar_calls(
                child, node.get("type") == "TABLE_FUNCTION" and key == "function"
            )


def _literal(arg: dict) -> object:
    """The value of a constant argument, or None for anything computed."""
    if arg.get("class") != "CONSTANT":
        return None
    value = arg.get("value") or {}
    return None if value.get("is_null") else value.get("value")


def _size_problem(name: str, args: list) -> str | None:
    """Why a call may build too large a value (None when it cannot)."""
    if name in _SIZE_ARGUMENT and len(args) > _SIZE_ARGUMENT[name]:
        size = _literal(args[_SIZE_ARGUMENT[name]])
        if not isinstance(size, int | float):
            return "needs a literal number as its size"
        return f"asks for {size:,}" if size > MAX_BUILT_VALUE else None
    if name in _RANGE_FUNCTIONS and args:
        values = [_literal(a) for a in args]
        if not all(isinstance(v, int) for v in values):
            return "needs literal whole numbers (use it in FROM for a computed range)"
        start, stop, step = (0, values[0], 1) if len(values) == 1 else (*values[:2], 1)
        step = values[2] if len(values) > 2 else step
        if step == 0 or (stop - start) / step > MAX_BUILT_VALUE:
            return f"asks for {(stop - start) // (step or 1):,} elements"
        return None
    if name in _FORMAT_FUNCTIONS and args:
        pattern = _literal(args[0])
        if not isinstance(pattern, str):
            return "needs a literal format string"
        return (
            "asks for a field of a million characters or more"
            if _WIDE_FORMAT.search(pattern)
            else None
        )
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
