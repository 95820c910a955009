"""Prediction rows name their ledger entry through their batch (first_index + batch_pos)
instead of a ledger_index column of their own, so that a writer can store them before
it takes the ledger head lock.

Existing predictions each become a batch of one whose first_index is their old
ledger_index (batch id = ledger_index + 1), so every prediction keeps its entry; the
reverse migration puts ledger_index back from the batches.  The batch table is
append-only, like the ledger."""

import django.db.models.deletion
from django.core.management.color import no_style
from django.db import migrations, models

from compliance.ledger import dbguards

TABLE = "lineage_predictionbatch"


def guard(apps, schema_editor):
    dbguards.install(schema_editor, TABLE)


def unguard(apps, schema_editor):
    dbguards.uninstall(schema_editor, TABLE)


def _tables(apps, schema_editor):
    quote = schema_editor.connection.ops.quote_name
    return (quote(apps.get_model("lineage", "Prediction")._meta.db_table),
            quote(apps.get_model("lineage", "PredictionBatch")._meta.db_table))


def to_batches(apps, schema_editor):
    prediction, batch = _tables(apps, schema_editor)
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {prediction} WHERE ledger_index IS NULL")
        missing = cursor.fetchone()[0]
        if missing:
            raise RuntimeError(f"{missing} predictions have no ledger index; every recorded prediction has one, "
                               "so the table was changed outside TraceLedger: restore it before migrating")
        cursor.execute(f"INSERT INTO {batch} (id, first_index, size) "
                       f"SELECT ledger_index + 1, ledger_index, 1 FROM {prediction}")
        cursor.execute(f"UPDATE {prediction} SET batch_id = ledger_index + 1, batch_pos = 0")
        for sql in connection.ops.sequence_reset_sql(no_style(), [apps.get_model("lineage", "PredictionBatch")]):
            cursor.execute(sql)


def from_batches(apps, schema_editor):
    prediction, batch = _tables(apps, schema_editor)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"UPDATE {prediction} SET ledger_index = "
                       f"(SELECT b.first_index FROM {batch} b WHERE b.id = {prediction}.batch_id) + batch_pos")


class Migration(migrations.Migration):

    dependencies = [
        ('lineage', '0006_fewer_indexes_on_append_paths'),
    ]

    operations = [
        migrations.CreateModel(
            name='PredictionBatch',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('first_index', models.BigIntegerField(null=True, unique=True)),
                ('size', models.IntegerField()),
            ],
        ),
        migrations.AddField(
            model_name='prediction',
            name='batch',
            field=models.ForeignKey(db_constraint=False, db_index=False, null=True,
                                    on_delete=django.db.models.deletion.PROTECT, related_name='predictions',
                                    to='lineage.predictionbatch'),
        ),
        migrations.AddField(
            model_name='prediction',
            name='batch_pos',
            field=models.IntegerField(null=True),
        ),
        migrations.RunPython(to_batches, from_batches),
        migrations.RemoveField(
            model_name='prediction',
            name='ledger_index',
        ),
        migrations.AlterField(
            model_name='prediction',
            name='batch',
            field=models.ForeignKey(db_constraint=False, db_index=False,
                                    on_delete=django.db.models.deletion.PROTECT, related_name='predictions',
                                    to='lineage.predictionbatch'),
        ),
        migrations.AlterField(
            model_name='prediction',
            name='batch_pos',
            field=models.IntegerField(),
        ),
        migrations.RunPython(guard, unguard),  # append-only, like the ledger
    ]
