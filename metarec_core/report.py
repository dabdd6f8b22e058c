"""Self-contained HTML stakeholder reports: text, metric cards, tables and interactive Plotly charts.

plotly.js is inlined once from the plotly package (no CDN: the file opens offline), so a report
is a single file that can be mailed around. Tables are escaped; nothing executes but plotly.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import plotly.graph_objects as go

_CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:2rem auto;
max-width:1100px;color:#1f2933;padding:0 1rem}
h1{margin-bottom:.2rem} .sub{color:#616e7c;margin-top:0}
h2{border-bottom:1px solid #e4e7eb;padding-bottom:.3rem;margin-top:2rem}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}
.card{border:1px solid #e4e7eb;border-radius:8px;padding:.6rem 1rem;min-width:140px}
.card .v{font-size:1.5rem;font-weight:600} .card .l{color:#616e7c;font-size:.85rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #e4e7eb;padding:.25rem .5rem;text-align:left}
th{background:#f5f7fa} .note{color:#616e7c;font-size:.85rem}
"""


@dataclass
class Section:
    """One part of a report: a heading and blocks (str = paragraph, dict = metric cards,
    DataFrame = table, Figure = chart)."""

    heading: str
    blocks: list[Any] = field(default_factory=list)


def _block(block: Any, max_rows: int) -> str:
    if isinstance(block, go.Figure):
        return block.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})
    if isinstance(block, pd.DataFrame):
        note = ""
        if len(block) > max_rows:
            note = f'<p class="note">First {max_rows} of {len(block):,} rows.</p>'
        return block.head(max_rows).to_html(index=False, escape=True, border=0) + note
    if isinstance(block, dict):
        cards = "".join(
            f'<div class="card"><div class="v">{html.escape(_fmt(v))}</div>'
            f'<div class="l">{html.escape(str(k))}</div></div>'
            for k, v in block.items()
        )
        return f'<div class="cards">{cards}</div>'
    return f"<p>{html.escape(str(block))}</p>"


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def build_report(
    title: str, sections: list[Section], subtitle: str = "", max_rows: int = 50
) -> str:
    """The whole report as one HTML string (UTF-8), plotly.js inlined."""
    from plotly.offline import get_plotlyjs

    body = []
    for s in sections:
        body.append(f"<h2>{html.escape(s.heading)}</h2>")
        body.extend(_block(b, max_rows) for b in s.blocks)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    sub = html.escape(subtitle + (" · " if subtitle else "") + f"generated {stamp} by MetaRec")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        f"<h1>{html.escape(title)}</h1><p class='sub'>{sub}</p>"
        + "\n".join(body)
        + "</body></html>"
    )
