"""Benchmarks: figures (messages/second, latency percentiles, peak RSS), not pass/fail tests."""
