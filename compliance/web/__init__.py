"""The dashboard: server-rendered pages (thin views over the actions and queries below),
their forms, charts (pure plotly figure builders), paging and the ledger status shown on
pages, and /metrics."""
