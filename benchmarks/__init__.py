"""Benchmarks for webchat: the load generator (`python -m benchmarks.loadgen`) and its helpers."""
