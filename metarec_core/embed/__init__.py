"""Text embeddings: the packaged MiniLM encoder, a tiny fake for tests, and a persistent cache."""
