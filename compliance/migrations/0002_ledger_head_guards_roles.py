from django.db import migrations

from compliance.ledger import dbguards

APPEND_ONLY = ["compliance_ledgerentry"]  # later migrations extend dbguards.APPEND_ONLY_TABLES


def forwards(apps, schema_editor):
    apps.get_model("compliance", "LedgerHead").objects.get_or_create(pk=1, defaults={"size": 0})
    Group = apps.get_model("auth", "Group")
    for name in ("auditor", "engineer", "admin", "service"):
        Group.objects.get_or_create(name=name)
    for table in APPEND_ONLY:
        dbguards.install(schema_editor, table)


def backwards(apps, schema_editor):
    for table in APPEND_ONLY:
        dbguards.uninstall(schema_editor, table)


class Migration(migrations.Migration):
    dependencies = [("compliance", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]
    operations = [migrations.RunPython(forwards, backwards)]
