"""Data shown inside Streamlit's markdown elements stays text: markdown syntax is escaped."""

from __future__ import annotations

import re

_SYNTAX = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$])")


def plain(value: object) -> str:
    """``value`` as literal text for st.markdown / st.success / st.caption (no links, images,
    emphasis, HTML or colour directives survive)."""
    return _SYNTAX.sub(r"\\\1", str(value)).replace("\n", " ")
