"""Benchmarks: speed and memory of the pipeline against the notebook's way, on this machine."""
