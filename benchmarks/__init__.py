"""MetaRec benchmarks: quality and speed side by side (``make bench``; see benchmarks/README.md)."""
