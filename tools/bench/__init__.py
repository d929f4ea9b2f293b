"""Benchmarks of the softswitch against a Kamailio baseline (``python -m tools.bench``)."""
