"""Data Explorer: filtered slices as sortable tables and charts, and a read-only SQL box."""

from datetime import UTC, datetime, time

import streamlit as st

from metarec_core import services
from metarec_core.viz import figures as fig
from pages._shared import resources as res
from pages._shared.context import context
from pages._shared.plain import plain

ctx = context()
dataset = ctx.require_dataset()
st.title(f"Data Explorer · {dataset}")

tab_slice, tab_sql = st.tabs(["Filter", "SQL"])


def _time_filter(col, ov) -> tuple[float, float] | None:
    """A date range slider (timestamps) or an order-position slider; None = everything."""
    lo, hi = float(ov.summary["ts_min"] or 0), float(ov.summary["ts_max"] or 0)
    if hi <= lo:
        return None
    if ov.order_kind != "timestamp":
        picked = col.slider("Order position range", lo, hi, (lo, hi), key="ex_ts")
        return None if picked == (lo, hi) else picked
    d_lo, d_hi = (datetime.fromtimestamp(t, tz=UTC).date() for t in (lo, hi))
    if d_hi <= d_lo:
        return None
    picked = col.slider("Date range", d_lo, d_hi, (d_lo, d_hi), key="ex_dates")
    if picked == (d_lo, d_hi):
        return None
    start = datetime.combine(picked[0], time.min, tzinfo=UTC).timestamp()
    end = datetime.combine(picked[1], time.max, tzinfo=UTC).timestamp()
    return start, end


with tab_slice:
    cats = res.categories_of(ctx.db, dataset)
    ov = res.overview(ctx.db, dataset, 5)
    c1, c2, c3 = st.columns([2, 2, 3])
    category = c1.selectbox("Category", ["(all)", *cats], key="ex_category")
    activity = c2.selectbox("User activity", list(services.ACTIVITY_BUCKETS), key="ex_activity")
    ts_range = _time_filter(c3, ov)
    sl = res.explore(
        ctx.db, dataset, None if category == "(all)" else category, activity, ts_range, 5000
    )
    more = f"{sl.n_matching:,} interactions match"
    st.caption(f"{more} · the first {len(sl.rows):,} below · {sl.seconds * 1000:.0f} ms")
    left, right = st.columns(2)
    left.plotly_chart(
        fig.category_bar(sl.categories, "n", title="Slice by category"), key="ex_cat_chart"
    )
    right.plotly_chart(
        fig.category_bar(
            sl.top_items[["title", "n"]].rename(columns={"title": "category"}),
            "n",
            15,
            "Most frequent items",
        ),
        key="ex_top_chart",
    )
    st.markdown("**Interactions** (click a column header to sort)")
    st.dataframe(sl.rows, hide_index=True, key="ex_rows")
    st.download_button(
        "Download this slice as CSV",
        sl.rows.to_csv(index=False).encode(),
        file_name=f"{dataset}-slice.csv",
        mime="text/csv",
        key="ex_dl_slice",
        on_click="ignore",
    )

with tab_sql:
    examples = services.example_queries(dataset)
    pick = st.selectbox("Example queries", ["(write your own)", *examples], key="ex_example")
    if pick != "(write your own)" and st.session_state.get("ex_last_example") != pick:
        st.session_state["ex_sql"] = examples[pick]
        st.session_state["ex_last_example"] = pick
    st.session_state.setdefault("ex_sql", next(iter(examples.values())))
    sql = st.text_area(
        "SQL (read-only; tables: interactions, items, users)", key="ex_sql", height=140
    )
    if st.button("Run query", type="primary", key="ex_run"):
        st.session_state["ex_result"] = services.run_sql(ctx.store, sql, dataset)
    result = st.session_state.get("ex_result")
    if result is not None:
        if result.error:
            st.error(plain(result.error))
        else:
            more = " (first 10,000 rows)" if result.truncated else ""
            st.success(f"{len(result.frame):,} rows{more} in {result.seconds * 1000:.0f} ms")
            st.dataframe(result.frame, hide_index=True, key="ex_sql_table")
            chart = fig.result_chart(result.frame)
            if chart is not None:
                st.plotly_chart(chart, key="ex_sql_chart")
            st.download_button(
                "Download result as CSV",
                result.frame.to_csv(index=False).encode(),
                file_name="query.csv",
                mime="text/csv",
                key="ex_dl_sql",
                on_click="ignore",
            )
