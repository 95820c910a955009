"""Prediction: drop the single-column timestamp index (the two composite indexes
serve it) and the LIKE twin of the input_digest index (only equality is queried)."""


from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('lineage', '0005_prediction_deployment_no_single_index'),
    ]

    operations = [
        migrations.AlterField(
            model_name='prediction',
            name='input_digest',
            field=models.CharField(max_length=64),
        ),
        migrations.AlterField(
            model_name='prediction',
            name='timestamp',
            field=models.DateTimeField(),
        ),
        migrations.AddIndex(
            model_name='prediction',
            index=models.Index(fields=['input_digest'], name='prediction_input_digest'),
        ),
    ]
