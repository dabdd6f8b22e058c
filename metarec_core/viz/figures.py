"""Plotly figure builders for every chart in the app and the HTML report (no Streamlit here).

Each builder takes plain DataFrames / arrays and returns a ``plotly.graph_objects.Figure``; none
of them computes anything expensive, so pages and the report can call them freely.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

PALETTE = px.colors.qualitative.Alphabet + px.colors.qualitative.Dark24
BEFORE, AFTER = "#9aa5b1", "#e4572e"


def _layout(fig: go.Figure, title: str = "", height: int = 360) -> go.Figure:
    # A horizontal legend sits just above the plot; the title goes above it (never on top of it).
    legend = bool(fig.layout.showlegend is not False and len(fig.data) > 1)
    top = (40 if title else 10) + (30 if legend else 0)
    fig.update_layout(
        title=dict(text=title, x=0, xanchor="left", y=1, yanchor="top", yref="container", pad_t=8)
        if title
        else None,
        height=height + (30 if legend else 0),
        margin=dict(l=10, r=10, t=top, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0, title_text=""),
    )
    return fig


def empty_figure(message: str, height: int = 240) -> go.Figure:
    """A blank figure that says why there is nothing to show."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, height=height)


# ---- Overview / explorer ------------------------------------------------------------------------
def activity_histogram(per_user: pd.Series, cold_k: int | None = None) -> go.Figure:
    """Interactions per user on log-spaced bins, with the cold threshold marked."""
    counts = np.asarray(per_user, dtype=float)
    if counts.size == 0:
        return empty_figure("no users")
    hi = max(2.0, float(counts.max()))
    bins = np.unique(np.round(np.logspace(0, np.log10(hi + 1), 30)))
    hist, edges = np.histogram(counts, bins=bins)
    fig = go.Figure(
        go.Bar(
            x=edges[:-1],
            y=hist,
            width=np.diff(edges),
            offset=0,
            marker_color="#4c78a8",
            hovertemplate="%{x:.0f}+ interactions: %{y} users<extra></extra>",
        )
    )
    fig.update_xaxes(
        type="log", title="interactions per user (log)", range=[0, np.log10(edges[-1])]
    )
    fig.update_yaxes(title="users")
    if cold_k:
        fig.add_vline(x=max(cold_k, 1), line_dash="dash", line_color=AFTER)
        fig.add_annotation(
            x=np.log10(max(cold_k, 1)),
            y=0.97,
            yref="paper",
            yanchor="top",
            xanchor="left",
            showarrow=False,
            text=f" cold ≤ {cold_k}",
            font=dict(color=AFTER),
        )
    return _layout(fig, "Interactions per user")


def category_bar(mix: pd.DataFrame, value: str = "n", top: int = 25, title: str = "") -> go.Figure:
    """Horizontal bars of a category mix (columns: category, ``value``)."""
    if mix.empty:
        return empty_figure("no categories")
    d = mix.sort_values(value, ascending=False).head(top).iloc[::-1]
    fig = go.Figure(go.Bar(x=d[value], y=d["category"].astype(str), orientation="h"))
    fig.update_traces(marker_color="#4c78a8")
    return _layout(fig, title or "Category mix", height=max(260, 18 * len(d) + 60))


def activity_over_time(series: pd.DataFrame, x: str, y: str = "n", title: str = "") -> go.Figure:
    """Line of activity over time or over the order position."""
    if series.empty:
        return empty_figure("no activity")
    fig = px.line(series, x=x, y=y)
    fig.update_xaxes(title=None if x == "when" else x)
    fig.update_yaxes(title=y.removeprefix("n_").replace("_", " "))
    return _layout(fig, title or "Activity over time")


def result_chart(df: pd.DataFrame) -> go.Figure | None:
    """A quick chart of a query result: first text column against the first numeric one."""
    if df.empty or len(df.columns) < 2:
        return None
    num = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
    other = [c for c in df.columns if c not in num]
    if not num:
        return None
    x = other[0] if other else df.columns[0]
    y = num[0] if num[0] != x else (num[1] if len(num) > 1 else None)
    if y is None:
        return None
    d = df.head(50)
    fig = px.bar(d, x=d[x].astype(str), y=y)
    fig.update_xaxes(title=str(x))
    return _layout(fig, f"{y} by {x}")


# ---- Cold-start lab -----------------------------------------------------------------------------
def loss_curve(
    losses: Sequence[float] | Mapping[str, Sequence[float]], title: str = ""
) -> go.Figure:
    """Inner-loop (or training) loss against the step; one line per named series."""
    series = losses if isinstance(losses, Mapping) else {"loss": losses}
    fig = go.Figure()
    for name, vals in series.items():
        vals = list(vals)
        if vals:
            fig.add_trace(
                go.Scatter(x=list(range(len(vals))), y=vals, mode="lines+markers", name=name)
            )
    if not fig.data:
        return empty_figure("no loss recorded for this method")
    longest = max(len(t.x) for t in fig.data)
    fig.update_xaxes(title="step", dtick=1 if longest <= 12 else None)
    fig.update_yaxes(title="loss")
    return _layout(fig, title or "Inner-loop loss", height=300)


def mix_before_after(before: pd.DataFrame, after: pd.DataFrame) -> go.Figure:
    """Grouped bars of category shares in two recommendation lists (columns: category, share)."""
    if before.empty and after.empty:
        return empty_figure("no categories")
    cats = pd.concat([before["category"], after["category"]]).astype(str).unique().tolist()
    b = before.set_index(before["category"].astype(str))["share"].reindex(cats).fillna(0)
    a = after.set_index(after["category"].astype(str))["share"].reindex(cats).fillna(0)
    fig = go.Figure(
        [
            go.Bar(name="before", x=cats, y=b.to_numpy(), marker_color=BEFORE),
            go.Bar(name="after", x=cats, y=a.to_numpy(), marker_color=AFTER),
        ]
    )
    fig.update_layout(barmode="group")
    fig.update_yaxes(title="share of top-N", tickformat=".0%")
    return _layout(fig, "Category mix of the recommendations", height=320)


def metric_bars(metrics: pd.DataFrame) -> go.Figure:
    """Before/after bars per metric (columns: metric, before, after)."""
    fig = go.Figure(
        [
            go.Bar(name="before", x=metrics["metric"], y=metrics["before"], marker_color=BEFORE),
            go.Bar(name="after", x=metrics["metric"], y=metrics["after"], marker_color=AFTER),
        ]
    )
    fig.update_layout(barmode="group")
    return _layout(fig, "Metrics before vs after", height=300)


def gains_distribution(per_user: pd.DataFrame, metric: str = "ndcg@10") -> go.Figure:
    """Box + points of a per-user metric for each method (columns: method, ``metric``)."""
    if per_user.empty:
        return empty_figure("no users evaluated")
    fig = px.box(per_user, x="method", y=metric, points="all", color="method")
    fig.update_layout(showlegend=False)
    return _layout(fig, f"Per-user {metric} by method", height=360)


def gain_histogram(gains: pd.Series, label: str) -> go.Figure:
    """Histogram of per-user gains (after - before), zero marked."""
    if len(gains) == 0:
        return empty_figure("no gains")
    fig = go.Figure(go.Histogram(x=gains, nbinsx=30, marker_color=AFTER))
    fig.add_vline(x=0, line_dash="dash")
    fig.update_xaxes(title=label)
    fig.update_yaxes(title="users")
    return _layout(fig, f"Distribution of gains: {label}", height=300)


# ---- Category lab -------------------------------------------------------------------------------
def confusion_heatmap(matrix: pd.DataFrame, title: str = "") -> go.Figure:
    """A confusion matrix (rows true, columns predicted) as a heatmap, row-normalised colours."""
    if matrix.empty:
        return empty_figure("no confusion matrix (ground truth unknown)")
    counts = matrix.to_numpy(dtype=float)
    norm = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig = go.Figure(
        go.Heatmap(
            z=norm,
            x=[str(c) for c in matrix.columns],
            y=[str(r) for r in matrix.index],
            text=counts.astype(int),
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar=dict(title="row share"),
            hovertemplate="true %{y} → predicted %{x}: %{text}<extra></extra>",
        )
    )
    fig.update_xaxes(title="predicted")
    fig.update_yaxes(title="true", autorange="reversed")
    n = max(len(matrix), 4)
    return _layout(fig, title or "Confusion matrix", height=min(900, 120 + 28 * n))


def confidence_histogram(
    preds: pd.DataFrame,
    threshold: float | None = None,
    value: str = "confidence",
    title: str = "Prediction confidence",
) -> go.Figure:
    """Histogram of the predictions' ``value`` column per predicted category, with ``threshold``
    (a cut on that same column) marked."""
    if preds.empty:
        return empty_figure("no predictions")
    d = preds.assign(category=preds["category"].fillna("(none)").astype(str))
    fig = px.histogram(d, x=value, color="category", nbins=30, barmode="overlay")
    if threshold is not None:
        fig.add_vline(x=threshold, line_dash="dash", annotation_text="threshold")
    return _layout(fig, title, height=300)


# ---- Training & runs ----------------------------------------------------------------------------
def eval_chart(table: pd.DataFrame, metric: str = "ndcg@10") -> go.Figure:
    """Grouped bars of a methods × k evaluation table (columns: method, k, ``metric``[, lo, hi])."""
    if table.empty or metric not in table:
        return empty_figure("no evaluation report")
    d = table.copy()
    d["k"] = d["k"].astype(str)
    err = None
    if {f"{metric}_lo", f"{metric}_hi"} <= set(d.columns):
        d["_err"] = d[f"{metric}_hi"] - d[metric]
        err = "_err"
    fig = px.bar(d, x="method", y=metric, color="k", barmode="group", error_y=err)
    return _layout(fig, f"{metric} by method and k", height=340)


# ---- Embedding map ------------------------------------------------------------------------------
def embedding_map(
    points: pd.DataFrame,
    overlays: pd.DataFrame | None = None,
    title: str = "",
    height: int = 620,
) -> go.Figure:
    """Items as small dots coloured by category, with labelled overlay markers on top.

    points: x, y, item_id, title, category.  overlays: x, y, label, kind (prototype | support |
    before | after | recommended | path), optional item_id; "path" points are joined in order.
    """
    if points.empty:
        return empty_figure("no items to map", height=height)
    fig = go.Figure()
    cats = points["category"].fillna("(none)").astype(str)
    order = cats.value_counts().index.tolist()
    for n, cat in enumerate(order):
        d = points[cats == cat]
        fig.add_trace(
            go.Scattergl(
                x=d["x"],
                y=d["y"],
                mode="markers",
                name=cat,
                marker=dict(size=5, color=PALETTE[n % len(PALETTE)], opacity=0.55),
                customdata=np.stack([d["item_id"].astype(str), d["title"].astype(str)], axis=1),
                hovertemplate="%{customdata[1]}<br>id %{customdata[0]}<br>"
                + cat
                + "<extra></extra>",
            )
        )
    styles = {
        "prototype": dict(
            symbol="diamond", size=13, color="black", line=dict(width=1, color="white")
        ),
        "support": dict(symbol="star", size=15, color="#ffd166", line=dict(width=1, color="black")),
        "recommended": dict(symbol="circle-open", size=12, color=AFTER, line=dict(width=2)),
        "before": dict(symbol="x", size=16, color=BEFORE, line=dict(width=2, color="black")),
        "after": dict(symbol="x", size=18, color=AFTER, line=dict(width=2, color="black")),
        "selected": dict(symbol="square-open", size=11, color="#06d6a0", line=dict(width=2)),
        "path": dict(symbol="circle", size=9, color=AFTER, line=dict(width=1, color="black")),
    }
    if overlays is not None and not overlays.empty:
        for kind, d in overlays.groupby("kind", sort=False):
            labelled = kind in ("prototype", "before", "after", "path")
            mode = "markers+text" if labelled else "markers"
            fig.add_trace(
                go.Scatter(
                    x=d["x"],
                    y=d["y"],
                    mode="lines+" + mode if kind == "path" else mode,
                    text=d["label"].str.removeprefix("step ")
                    if kind == "path"
                    else (d["label"] if labelled else None),
                    textposition="bottom center" if kind == "before" else "top center",
                    line=dict(color=AFTER, width=2, dash="dot") if kind == "path" else None,
                    name="user's path (step)" if kind == "path" else str(kind),
                    marker=styles.get(str(kind), dict(size=10)),
                    hovertext=d["label"],
                    hoverinfo="text",
                )
            )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig = _layout(fig, title, height=height)
    return fig.update_layout(
        dragmode="lasso",
        height=height,
        margin=dict(t=40 if title else 10),
        legend=dict(orientation="v", x=1.01, y=1, yanchor="top", font=dict(size=10)),
    )


def new_shop_curve(curve: pd.DataFrame, metric: str = "ndcg@10") -> go.Figure:
    """Quality of a shop's new users as its log grows: methods that need no log of the shop
    (another shop's model, text only) are flat dashed lines; in-shop methods are drawn at each
    number of warm users they were fit on."""
    if curve.empty:
        return empty_figure("Nothing to compare yet.")
    sizes = sorted({int(n) for n in curve["target_users"] if n > 0})
    labels = ["0"] + [f"{n:,}" for n in sizes]
    fig = go.Figure()
    for method, g in curve.groupby("method", sort=False):
        if (g["target_users"] == 0).all():
            y = float(g[metric].iloc[0])
            fig.add_trace(
                go.Scatter(
                    x=labels, y=[y] * len(labels), name=f"{method} (no log needed)",
                    mode="lines", line={"dash": "dash"},
                )
            )  # fmt: skip
        else:
            g = g.sort_values("target_users")
            fig.add_trace(
                go.Scatter(
                    x=[f"{int(n):,}" for n in g["target_users"]], y=g[metric], name=method,
                    mode="lines+markers",
                )
            )  # fmt: skip
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=labels,
                     title="warm users of this shop the in-shop methods learned from")  # fmt: skip
    fig.update_yaxes(title=metric.upper())
    return _layout(fig, f"New shoppers' {metric.upper()} as the shop's log grows", height=420)
