"""Benchmarks for sse_core (not part of the package; run with ``python -m benchmarks.<name>``)."""
