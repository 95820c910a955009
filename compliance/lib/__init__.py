"""Small single-purpose helpers that every layer may use and that import nothing of ours:
the content-addressed artifact store (`store`), identifiers (`ids`), roles (`roles`) and
command-line conventions (`cli`)."""
