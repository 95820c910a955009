"""Benchmarks run by `manage.py bench NAME`; each module has `run(quick) -> dict`."""
