"""MetaRec analyst dashboard: ``streamlit run app.py`` (``make run`` does it on the demo data).

It listens on 127.0.0.1 only (``.streamlit/config.toml``: ``server.address``) and has no login;
to let others use it, put a reverse proxy with authentication in front (README, Security).
"""

from __future__ import annotations

import streamlit as st

from pages._shared.context import sidebar
from pages._shared.errors import error_boundary
from pages._shared.resources import umap_warm_up

st.set_page_config(page_title="MetaRec", page_icon=":material/explore:", layout="wide")

PAGES = [
    st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("pages/explorer.py", title="Data Explorer", icon=":material/table_view:"),
    st.Page("pages/coldstart_lab.py", title="Cold-Start Lab", icon=":material/person_add:"),
    st.Page("pages/new_shop.py", title="New Shop", icon=":material/storefront:"),
    st.Page("pages/category_lab.py", title="New Category Lab", icon=":material/new_label:"),
    st.Page("pages/embedding_map.py", title="Embedding Map", icon=":material/scatter_plot:"),
    st.Page("pages/training.py", title="Training & Runs", icon=":material/model_training:"),
]
WELCOME = st.Page(
    "pages/welcome.py", title="Get started", icon=":material/waving_hand:", default=True
)

ctx = None
with error_boundary("drawing the sidebar"):
    ctx = sidebar()
has_data = ctx is not None and ctx.dataset is not None
if has_data:
    umap_warm_up()
page = st.navigation(PAGES if has_data else [WELCOME])
with error_boundary(f"showing {page.title}"):
    page.run()
