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


APPEND_ONLY_TABLES: list[str] = [
    "compliance_ledgerentry", "compliance_merklenode", "compliance_checkpoint", "compliance_witnesscosignature",
    "lineage_predictionbatch",  # where each prediction's entry is (lineage 0007)
]


def app_role_sql(role: str = "traceledger_app") -> list[str]:
    """PostgreSQL grants for the role the application runs as, which must not own the
    tables (an owner can drop the triggers): everything it needs on ordinary tables,
    only SELECT and INSERT on the evidence tables.  Migrations run as the owner."""
    tables = ", ".join(APPEND_ONLY_TABLES)
    return [
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
        f"REVOKE UPDATE, DELETE, TRUNCATE ON {tables} FROM {role}",
    ]


class _CursorEditor:
    """Just enough of a schema editor for install/uninstall: plain statements on a
    cursor, so the guards can be lifted inside a transaction (SQLite's schema editor
    refuses to run in one) and come back if it rolls back."""

    def __init__(self, connection):
        self.connection = connection

    def execute(self, sql: str, params=None) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)


class suspended:
    """Lift the guards on `tables` for the duration of a block (the table owner can;
    tests use it to flush between tests and to play an attacker who drops triggers)."""

    def __init__(self, connection, tables: list[str] | None = None):
        self.editor = _CursorEditor(connection)
        self.tables = list(tables or APPEND_ONLY_TABLES)

    def _settle_deferred_checks(self) -> None:
        # PostgreSQL will not alter a table's triggers while deferred foreign-key
        # checks on it are pending in this transaction: run them now.
        if self.editor.connection.vendor == "postgresql":
            self.editor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    def __enter__(self):
        self._settle_deferred_checks()
        for table in self.tables:
            uninstall(self.editor, table)
        return self

    def __exit__(self, *exc):
        self._settle_deferred_checks()
        for table in self.tables:
            install(self.editor, table)
        if self.editor.connection.vendor == "postgresql":
            self.editor.execute("SET CONSTRAINTS ALL DEFERRED")
