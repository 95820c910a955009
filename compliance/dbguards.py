"""Append-only guards in the database itself, installed by migrations.

PostgreSQL: BEFORE UPDATE/DELETE row triggers and a BEFORE TRUNCATE statement trigger,
set ENABLE ALWAYS so that `session_replication_role = replica` does not bypass them.
SQLite: BEFORE UPDATE/DELETE triggers (SQLite has no TRUNCATE).  A table owner can
still drop a trigger: signed checkpoints are what make that detectable.
"""
from __future__ import annotations

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION traceledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'traceledger: % on % is refused: the table is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def install(schema_editor, table: str) -> None:
    vendor = schema_editor.connection.vendor
    run = schema_editor.execute
    if vendor == "postgresql":
        run(PG_FUNCTION, params=None)
        run(f'CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON "{table}" '
            f"FOR EACH ROW EXECUTE FUNCTION traceledger_append_only()")
        run(f'CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON "{table}" '
            f"FOR EACH STATEMENT EXECUTE FUNCTION traceledger_append_only()")
        run(f'ALTER TABLE "{table}" ENABLE ALWAYS TRIGGER {table}_no_update_delete')
        run(f'ALTER TABLE "{table}" ENABLE ALWAYS TRIGGER {table}_no_truncate')
    elif vendor == "sqlite":
        for op in ("UPDATE", "DELETE"):
            run(f'CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON "{table}" '
                f"BEGIN SELECT RAISE(ABORT, 'traceledger: {op} on {table} is refused: the table is append-only'); END")
    else:
        raise RuntimeError(f"no append-only guard for database vendor {vendor}")


def uninstall(schema_editor, table: str) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(f'DROP TRIGGER IF EXISTS {table}_no_update_delete ON "{table}"')
        schema_editor.execute(f'DROP TRIGGER IF EXISTS {table}_no_truncate ON "{table}"')
    elif vendor == "sqlite":
        for op in ("update", "delete"):
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_{op}")


APPEND_ONLY_TABLES: list[str] = ["compliance_ledgerentry", "compliance_merklenode", "compliance_checkpoint"]


class suspended:
    """Lift the guards on `tables` for the duration of a block (the table owner can;
    tests use it to flush between tests and to play an attacker who drops triggers)."""

    def __init__(self, connection, tables: list[str] | None = None):
        self.connection = connection
        self.tables = list(tables or APPEND_ONLY_TABLES)

    def __enter__(self):
        with self.connection.schema_editor(atomic=False) as editor:
            for table in self.tables:
                uninstall(editor, table)
        return self

    def __exit__(self, *exc):
        with self.connection.schema_editor(atomic=False) as editor:
            for table in self.tables:
                install(editor, table)
