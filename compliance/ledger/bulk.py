"""Fast inserts for the ledger's hot path.  On PostgreSQL, COPY through the connection
Django already holds (so it joins the current transaction): psycopg's C-accelerated
COPY is far cheaper than client-side parameter quoting of a 6,000-value INSERT.
Elsewhere, bulk_create."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from itertools import islice

from django.db import connection


def insert_rows(model, fields: Sequence[str], rows: Sequence[tuple]) -> None:
    if not rows:
        return
    if connection.vendor == "postgresql":
        with _copy(model, fields) as copy:
            for row in rows:
                copy.write_row(row)
        return
    model.objects.bulk_create([model(**dict(zip(fields, row))) for row in rows], batch_size=2000)


def copy_lines(model, fields: Sequence[str], lines: Iterable[str], *, chunk: int = 1000) -> None:
    """PostgreSQL only: COPY lines of COPY text format (fields escaped by the caller,
    each line ending in a newline), written `chunk` lines at a time as the iterable
    yields them, so the server stores one chunk while the next is generated."""
    lines = iter(lines)
    with _copy(model, fields) as copy:
        while part := list(islice(lines, chunk)):
            copy.write("".join(part))


@contextmanager
def _copy(model, fields: Sequence[str]):
    """COPY … FROM STDIN on Django's connection (so it joins the current transaction),
    psycopg's errors raised as Django's (IntegrityError, DataError…) like any query's."""
    meta = model._meta
    columns = ", ".join(connection.ops.quote_name(meta.get_field(f).column) for f in fields)
    sql = f"COPY {connection.ops.quote_name(meta.db_table)} ({columns}) FROM STDIN"
    with connection.wrap_database_errors, connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        yield copy
