"""Streamlit glue shared by the pages: cached resources, sidebar widgets, progress, error boundary."""
