"""The text encoder a page embeds with, by registry name: one lazy encoder per process."""

import streamlit as st

from pages._shared import resources as res


@st.cache_resource(show_spinner=False)
def _registry_encoder(name: str):
    from metarec_core.embed.service import lazy_encoder

    return lazy_encoder(name)


def encoder(name: str):
    """The app's shared encoder for MiniLM (and the tests' fake), a registry one otherwise; the
    model itself loads only when a text is missing from the cache."""
    if name == "minilm" or name.startswith("fake"):
        return res.encoder(name)
    return _registry_encoder(name)
