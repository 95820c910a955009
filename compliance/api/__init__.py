"""The REST API: one JSON error shape (`errors`), the OpenAPI schema, and one module per
area: transparency (checkpoints, proofs, keys), investigation (alerts, ledger, cases),
lineage (the graph, predict, trace) and ingest (external inference servers)."""
