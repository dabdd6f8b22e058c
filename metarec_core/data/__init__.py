"""Data layer: the DuckDB store, importers, file readers, analyst queries and user splits."""
