"""Benchmarks for labelgate (not tests). Run them from the repo root as modules."""
