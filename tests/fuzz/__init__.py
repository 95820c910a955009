"""Property-based fuzzing of every surface (hypothesis): tests/fuzz/test_surfaces.py throws
tests/fuzz/strategies.py's hostile values at every URL pattern and form; the query
surfaces of issue 22 live in test_queries.py / query_strategies.py."""
