"""Benchmarks: scripts that print numbers (never assertions on time)."""
