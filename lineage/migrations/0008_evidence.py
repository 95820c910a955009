"""Output digests become salted commitments, "v2:" and 64 hex digits (issue 21): the
column grows from 64 to 67 characters.  On PostgreSQL widening a varchar rewrites
nothing; existing rows keep their legacy 64-digit digests."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("lineage", "0007_prediction_batches")]

    operations = [
        migrations.AlterField(model_name="prediction", name="output_digest", field=models.CharField(max_length=67)),
    ]
