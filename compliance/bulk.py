"""Fast inserts for the ledger's hot path.  On PostgreSQL, COPY through the connection
Django already holds (so it joins the current transaction): psycopg's C-accelerated
COPY is far cheaper than client-side parameter quoting of a 6,000-value INSERT.
Elsewhere, bulk_create."""
from __future__ import annotations

from collections.abc import Sequence

from django.db import connection


def insert_rows(model, fields: Sequence[str], rows: Sequence[tuple]) -> None:
    if not rows:
        return
    if connection.vendor == "postgresql":
        meta = model._meta
        columns = ", ".join(connection.ops.quote_name(meta.get_field(f).column) for f in fields)
        with connection.wrap_database_errors, connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY {connection.ops.quote_name(meta.db_table)} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    model.objects.bulk_create([model(**dict(zip(fields, row))) for row in rows], batch_size=2000)
