"""A stand-in for the dashboard's Case model (another branch adds the real one), in an
isolated app registry with its own table, so that case exports and legal holds are
tested against a real table before that model exists here.  The code under test finds
it the same way it finds the real model: `registry.get_model("compliance", "Case")`."""
from __future__ import annotations

from contextlib import contextmanager

from django.db import connection, models
from django.test.utils import isolate_apps


@contextmanager
def case_registry():
    """Yield (registry, Case) with the table created inside the current transaction."""
    with isolate_apps("compliance") as registry:
        class Case(models.Model):
            inference_id = models.UUIDField()
            kind = models.CharField(max_length=32, default="dispute")
            status = models.CharField(max_length=32, default="open")
            notes = models.TextField(blank=True)
            decision = models.TextField(blank=True)
            legal_hold = models.BooleanField(default=False)

            class Meta:
                app_label = "compliance"
                db_table = "test_stand_in_case"

        # table_sql needs no schema-editor context, which SQLite refuses inside a transaction.
        sql, params = connection.schema_editor().table_sql(Case)
        drop = f"DROP TABLE IF EXISTS {Case._meta.db_table}"
        with connection.cursor() as cursor:
            cursor.execute(drop)
            cursor.execute(sql, params)
        try:
            yield registry, Case
        finally:
            with connection.cursor() as cursor:
                cursor.execute(drop)
