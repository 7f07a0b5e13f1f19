"""Loopback servers that tests and benchmarks run against (no network)."""
