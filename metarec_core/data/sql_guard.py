"""Analyst SQL: accept exactly one read-only SELECT-like statement, reject everything else.

DuckDB's own parser classifies the statement (no regex guessing); the first keyword is checked
too because DuckDB rewrites e.g. ``PRAGMA`` into a SELECT. The store connection adds two more
walls behind this guard: a READ ONLY transaction and disabled external file access.
"""

from __future__ import annotations

import re

import duckdb

from metarec_core.errors import ValidationError

ALLOWED_FIRST = ("select", "with", "from", "values", "table", "describe", "show", "summarize", "(")
# string literals and quoted identifiers (kept) or comments (dropped)
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.S)


def strip_comments(sql: str) -> str:
    """``sql`` without -- and /* */ comments (quotes respected), trailing ';' removed."""
    text = _TOKENS.sub(lambda m: " " if m.group(0)[0] in "-/" else m.group(0), sql)
    return text.strip().rstrip(";").strip()


def check_select(sql: str) -> str:
    """The single statement of ``sql`` (no trailing ';') if it is a read-only query, else raise."""
    if not sql or not sql.strip():
        raise ValidationError("empty query: write one SELECT statement")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise ValidationError(f"SQL syntax error: {first}") from exc
    if len(statements) != 1:
        raise ValidationError(
            f"only one statement is allowed, found {len(statements)}; remove the extra ';'"
        )
    stmt = statements[0]  # DuckDB may rewrite its text (PRAGMA -> SELECT): judge the original
    text = strip_comments(sql)
    first = text.split(None, 1)[0].lower() if text else ""
    first = "(" if first.startswith("(") else first
    if stmt.type != duckdb.StatementType.SELECT or first not in ALLOWED_FIRST:
        kind = first.upper() or str(stmt.type).split(".")[-1]
        raise ValidationError(
            f"only read-only SELECT queries are allowed here (got {kind}); "
            "use SELECT ... / WITH ... SELECT ..."
        )
    return text
