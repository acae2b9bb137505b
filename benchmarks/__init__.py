"""Benchmark scripts of ssast-sb (run as ``python benchmarks/<script>.py``)."""
