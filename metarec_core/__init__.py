"""MetaRec core library: store, encoder, few-shot engines and evaluation (no Streamlit here)."""

__version__ = "0.1.0"
