"""Benchmarks, run from the repository root (``scripts/bench.sh`` runs ``python -m bench.ingest``)."""
