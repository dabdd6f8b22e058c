"""First run: the store is empty; explain what to do and offer to import the demo data."""

import streamlit as st

from metarec_core import services
from pages._shared import resources as res
from pages._shared.plain import plain
from pages._shared.progress import StreamlitProgress

st.title("Welcome to MetaRec")
st.markdown(
    """
MetaRec shows how few-shot ("meta-learning") adaptation helps with **new users** who have only a
handful of interactions and with **new product categories** that have only a few labelled products.

**There is no data in the store yet.** Either

1. import the demo shops with the button below: a beauty shop (Amazon Beauty: 22,363 shoppers,
   12,101 products) for new shoppers and a grocery catalogue (Instacart products in 98 aisles) for
   new categories; they ship with MetaRec, nothing is downloaded; or
2. from a terminal, stop the app and run `make demo` (or
   `python -m metarec_core demo --if-missing`), or import your own files with
   `python -m metarec_core import --help`, then start the app again.

On the first start with data, MetaRec trains the shop's demo models in the background (a few
minutes on a laptop CPU); the sidebar shows the progress and the labs open when they are ready.
"""
)
st.caption(f"Store: {plain(res.paths().db_path)}")
if st.button("Import the demo shops", type="primary", key="welcome_import"):
    res.close_store()
    bar = StreamlitProgress("Importing the demo data…")
    services.import_demo(res.paths(), progress=bar)
    res.close_store()
    st.success("Demo data imported.")
    st.rerun()
