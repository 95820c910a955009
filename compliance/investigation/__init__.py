"""Investigation: what people do with the evidence. Alerts and their notification,
cases (with legal holds), retention and erasure, evidence bundles, PDF reports and
their exports, and the ledger checks run on a person's behalf. Uses every layer below."""
