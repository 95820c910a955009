"""Drop LedgerEntry's single-column kind and subject indexes (four on PostgreSQL,
with their LIKE twins): the (kind, index) and (subject, index) indexes answer the same
lookups, and each index is paid for on every append."""

from django.db import migrations, models

from compliance.ledger import dbguards


def restore_sqlite_guards(apps, schema_editor):
    # SQLite alters a column by rebuilding the table, which drops its triggers
    if schema_editor.connection.vendor == "sqlite":
        dbguards.uninstall(schema_editor, "compliance_ledgerentry")
        dbguards.install(schema_editor, "compliance_ledgerentry")


class Migration(migrations.Migration):

    dependencies = [
        ('compliance', '0005_dashboard'),
    ]

    operations = [
        migrations.AlterField(
            model_name='ledgerentry',
            name='kind',
            field=models.CharField(max_length=64),
        ),
        migrations.AlterField(
            model_name='ledgerentry',
            name='subject',
            field=models.CharField(blank=True, max_length=128),
        ),
        migrations.RunPython(restore_sqlite_guards, migrations.RunPython.noop),
    ]
