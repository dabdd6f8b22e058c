"""The error boundary: no traceback reaches the page, only a clear message with details folded."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from metarec_core.errors import MetaRecError

log = logging.getLogger("metarec.app")


def show_error(exc: BaseException, what: str = "") -> None:
    """An error box: the message for people, the traceback inside an expander."""
    where = f" while {what}" if what else ""
    if isinstance(exc, MetaRecError):
        st.error(f"{exc}", icon=":material/warning:")
        return
    log.exception("unexpected error%s", where)
    st.error(
        f"Something went wrong{where}: {type(exc).__name__}: {exc}. "
        "The details below help a developer; the rest of the app still works.",
        icon=":material/error:",
    )
    with st.expander("Details"):
        st.code("".join(traceback.format_exception(exc)), language="text")


@contextmanager
def error_boundary(what: str = "") -> Iterator[None]:
    """Catch every ordinary exception inside the block and show it with ``show_error``.

    Streamlit's own control flow (rerun, stop, switch_page) derives from BaseException and passes.
    """
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - this is the boundary
        show_error(exc, what)
