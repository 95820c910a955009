"""lineage 0007 moves a prediction's ledger index into its batch; predictions recorded
before it keep their entries, and the reverse migration gives the column back."""
from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from compliance.benchmarks.provenance import fake_records
from compliance.models import LedgerEntry
from inference.provenance.writer import write_records
from lineage.models import Prediction, PredictionBatch, PredictionHour

BEFORE = ("lineage", "0006_fewer_indexes_on_append_paths")
AFTER = ("lineage", "0007_prediction_batches")
LATEST = ("lineage", "0009_prediction_hours")


def legacy(records):
    """Records as written before output commitments were salted (lineage 0008): the
    migrations this test walks back through hold 64-digit output digests."""
    for r in records:
        r.output_digest = r.output_digest.removeprefix("v2:")
    return records


def migrate(target) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    executor.loader.build_graph()
    return executor


@pytest.mark.embedded
def test_predictions_keep_their_ledger_entries_through_the_batch_migration(transactional_db, credit_deployment):
    records = legacy(fake_records(credit_deployment, 7))
    write_records(records[:3])
    write_records(records[3:])
    expected = {str(p.inference_id): p.ledger_index for p in Prediction.objects.select_related("batch")}
    assert sorted(expected.values()) == sorted(
        LedgerEntry.objects.filter(kind="prediction.recorded").values_list("index", flat=True))
    try:
        old = migrate(BEFORE).loader.project_state([BEFORE]).apps.get_model("lineage", "Prediction")
        assert {str(i): n for i, n in old.objects.values_list("inference_id", "ledger_index")} == expected
    finally:
        migrate(AFTER)
        migrate(LATEST)
    # each older prediction is now a batch of one at its old index
    assert PredictionBatch.objects.count() == 7
    # lineage 0009 counted the stored predictions per hour as the writer now does
    assert sum(PredictionHour.objects.values_list("n", flat=True)) == 7
    assert {str(p.inference_id): p.ledger_index for p in Prediction.objects.select_related("batch")} == expected
    write_records(fake_records(credit_deployment, 2))  # the batch ids go on after the migrated ones
    assert PredictionBatch.objects.count() == 8
    assert sum(PredictionHour.objects.values_list("n", flat=True)) == 9
