"""Text embeddings: packaged encoders by name (``registry``: minilm, mpnet, multilingual), a tiny fake for tests, and a persistent cache keyed by encoder."""
