"""The lineage graph: Submitter → Build → Engine → Deployment → Prediction, with the
ONNX ModelSource a build starts from and every EngineLoad attempt.

Every node carries a content digest or a stable id, and the ledger index of the entry
that recorded its creation.
"""
from __future__ import annotations

import uuid

from django.db import models

from compliance.models import AppendOnlyModel


class ModelSource(models.Model):
    """A registered ONNX model, stored content-addressed by its sha256."""

    name = models.CharField(max_length=200)
    sha256 = models.CharField(max_length=64, unique=True)
    size = models.BigIntegerField()
    opset = models.IntegerField()
    ir_version = models.IntegerField()
    producer = models.CharField(max_length=200, blank=True)
    inputs = models.JSONField(default=list)
    outputs = models.JSONField(default=list)
    repo = models.CharField(max_length=500)
    commit = models.CharField(max_length=64)
    registered_by = models.CharField(max_length=150)
    training_run_url = models.CharField(max_length=500, blank=True)
    training_data_ref = models.CharField(max_length=500, blank=True)
    training_data_sha256 = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ledger_index = models.BigIntegerField(null=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.sha256[:12]})"

    def input_spec(self) -> dict[str, dict]:
        return {i["name"]: i for i in self.inputs}

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "sha256": self.sha256,
            "size": self.size,
            "opset": self.opset,
            "ir_version": self.ir_version,
            "producer": self.producer,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "repo": self.repo,
            "commit": self.commit,
            "registered_by": self.registered_by,
            "training_run_url": self.training_run_url,
            "training_data_ref": self.training_data_ref,
            "training_data_sha256": self.training_data_sha256,
            "created_at": self.created_at.isoformat(),
            "ledger_index": self.ledger_index,
        }


class CalibrationSet(models.Model):
    """An .npz of named input arrays (axis 0 = samples) for INT8 static quantization and
    parity checks, stored content-addressed and validated against one model's inputs."""

    model = models.ForeignKey(ModelSource, on_delete=models.PROTECT, related_name="calibration_sets")
    name = models.CharField(max_length=200)
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.BigIntegerField()
    sample_count = models.IntegerField()
    inputs = models.JSONField(default=dict, help_text="input name -> {dtype, shape}")
    registered_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    ledger_index = models.BigIntegerField(null=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["model", "sha256"], name="one_calibration_per_model_and_digest")]

    def __str__(self) -> str:
        return f"calibration {self.name} ({self.sha256[:12]}, {self.sample_count} samples)"

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "model_id": self.model_id,
            "name": self.name,
            "sha256": self.sha256,
            "size": self.size,
            "sample_count": self.sample_count,
            "inputs": self.inputs,
            "registered_by": self.registered_by,
            "created_at": self.created_at.isoformat(),
            "ledger_index": self.ledger_index,
        }


class Build(models.Model):
    QUEUED, BUILDING, VERIFYING, SIGNING = "queued", "building", "verifying", "signing"
    SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
    STATUSES = [(s, s) for s in (QUEUED, BUILDING, VERIFYING, SIGNING, SUCCEEDED, FAILED, CANCELLED)]
    FINAL = (SUCCEEDED, FAILED, CANCELLED)
    ACTIVE = (BUILDING, VERIFYING, SIGNING)

    model = models.ForeignKey(ModelSource, on_delete=models.PROTECT, related_name="builds")
    calibration = models.ForeignKey(CalibrationSet, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="builds")
    backend = models.CharField(max_length=32)
    precision = models.CharField(max_length=8)
    profiles = models.JSONField(default=dict)
    options = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=STATUSES, default=QUEUED, db_index=True)
    submitter = models.CharField(max_length=150)
    commit = models.CharField(max_length=64)
    repo = models.CharField(max_length=500, blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    worker_host = models.CharField(max_length=200, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    device = models.JSONField(default=dict)
    backend_version = models.CharField(max_length=64, blank=True)
    timings = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    log = models.TextField(blank=True)
    # Refreshed by the worker while it builds; the reaper fails builds whose worker went quiet.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Parity against the ONNX model in FP32: per-output max abs/rel error (decimal strings).
    parity = models.JSONField(default=dict)
    parity_ok = models.BooleanField(null=True, help_text="False: outside the tolerance for its precision (flagged)")
    # Byproducts kept in the store (inspector JSON, timing cache): name -> {sha256, size}.
    artifacts = models.JSONField(default=dict)
    ledger_index = models.BigIntegerField(null=True)

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"build {self.id} {self.backend}/{self.precision} [{self.status}]"

    def to_dict(self) -> dict:
        engine = getattr(self, "engine", None)
        return {
            "id": self.id,
            "model_id": self.model_id,
            "backend": self.backend,
            "precision": self.precision,
            "profiles": self.profiles,
            "status": self.status,
            "submitter": self.submitter,
            "commit": self.commit,
            "repo": self.repo,
            "requested_at": self.requested_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "worker_host": self.worker_host,
            "device": self.device,
            "backend_version": self.backend_version,
            "timings": self.timings,
            "error": self.error,
            "options": self.options,
            "calibration_sha256": self.options.get("calibration_sha256"),
            "parity": self.parity,
            "parity_ok": self.parity_ok,
            "artifacts": self.artifacts,
            "engine_id": engine.id if engine else None,
            "engine_sha256": engine.sha256 if engine else None,
        }


class Engine(models.Model):
    """A built engine: its bytes live in the store under `sha256`, its signed manifest
    (a DSSE envelope around an in-toto Statement) is kept verbatim."""

    build = models.OneToOneField(Build, on_delete=models.PROTECT, related_name="engine")
    # Not unique: a rebuild with the same inputs may yield identical bytes, and each
    # build still gets its own engine record and attestation.
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.BigIntegerField()
    backend = models.CharField(max_length=32)
    backend_version = models.CharField(max_length=64)
    precision = models.CharField(max_length=8)
    metadata = models.JSONField(default=dict)
    manifest = models.TextField(help_text="DSSE envelope, JSON")
    manifest_sha256 = models.CharField(max_length=64)
    signing_key_id = models.CharField(max_length=64)
    usable = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Last periodic re-verification (re-hash + signature): when, and its verdict.
    reverified_at = models.DateTimeField(null=True, blank=True)
    reverify_verdict = models.CharField(max_length=20, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def verify_manifest(self, actual_sha256: str) -> tuple[str, str]:
        """(verdict, detail) for this engine's signed manifest against the digest of the
        engine bytes at hand (compliance.ledger.manifests: one rule for every caller).
        It was signed when the ledger recorded its build's success (the row's own time
        only where that entry is missing)."""
        from compliance.ledger.keystate import entry_time
        from compliance.ledger.manifests import verify_manifest

        signed_at = entry_time("build.succeeded", f"build:{self.build_id}") or self.created_at
        return verify_manifest(self.manifest, actual_sha256, signed_at=signed_at)

    def __str__(self) -> str:
        return f"engine {self.id} {self.sha256[:12]}"

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "build_id": self.build_id,
            "sha256": self.sha256,
            "size": self.size,
            "backend": self.backend,
            "backend_version": self.backend_version,
            "precision": self.precision,
            "manifest_sha256": self.manifest_sha256,
            "signing_key_id": self.signing_key_id,
            "usable": self.usable,
            "created_at": self.created_at.isoformat(),
            "reverified_at": self.reverified_at.isoformat() if self.reverified_at else None,
            "reverify_verdict": self.reverify_verdict,
        }


class Deployment(models.Model):
    """An engine deployed to a named service; pins the engine and manifest digests.
    Deploying again to the same service and environment retires the previous one."""

    service = models.CharField(max_length=100, db_index=True)
    environment = models.CharField(max_length=50, default="production")
    engine = models.ForeignKey(Engine, on_delete=models.PROTECT, related_name="deployments")
    engine_sha256 = models.CharField(max_length=64)
    manifest_sha256 = models.CharField(max_length=64)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    ledger_index = models.BigIntegerField(null=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "environment"], condition=models.Q(retired_at__isnull=True),
                name="one_live_deployment_per_service",
            )
        ]

    def __str__(self) -> str:
        return f"{self.service}/{self.environment} → engine {self.engine_id}"

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "service": self.service,
            "environment": self.environment,
            "engine_id": self.engine_id,
            "engine_sha256": self.engine_sha256,
            "manifest_sha256": self.manifest_sha256,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "retired_at": self.retired_at.isoformat() if self.retired_at else None,
        }


class EngineLoad(models.Model):
    VERIFIED = "verified"
    VERDICTS = [(v, v) for v in (
        "verified", "digest_mismatch", "unsigned", "bad_signature", "unknown_key", "revoked",
        "not_deployed", "unusable",
    )]

    deployment = models.ForeignKey(Deployment, null=True, on_delete=models.PROTECT, related_name="loads")
    service = models.CharField(max_length=100)
    expected_sha256 = models.CharField(max_length=64, blank=True)
    actual_sha256 = models.CharField(max_length=64, blank=True)
    verdict = models.CharField(max_length=20, choices=VERDICTS, db_index=True)
    detail = models.CharField(max_length=500, blank=True)
    host = models.CharField(max_length=200, blank=True)
    # Set by runtimes that report their loads through the API, so a retried report is
    # recorded once.
    attempt_id = models.UUIDField(null=True, blank=True, unique=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    ledger_index = models.BigIntegerField(null=True)

    class Meta:
        ordering = ["-created_at"]

    @property
    def ok(self) -> bool:
        return self.verdict == self.VERIFIED

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "attempt_id": str(self.attempt_id) if self.attempt_id else None,
            "service": self.service,
            "deployment_id": self.deployment_id,
            "verdict": self.verdict,
            "expected_sha256": self.expected_sha256,
            "actual_sha256": self.actual_sha256,
            "detail": self.detail,
            "host": self.host,
            "created_at": self.created_at.isoformat(),
            "ledger_index": self.ledger_index,
        }


class PredictionBatch(AppendOnlyModel):
    """Where one written batch of predictions sits in the ledger: its entries take the
    consecutive indexes from `first_index`, in the batch's order, so a prediction's
    entry is `first_index + batch_pos`.

    The writer draws the batch's id first and stores the predictions referring to it
    before the ledger head is locked: the prediction rows, the heaviest part of a
    write, stay off the path that every writer queues on.  The batch row itself goes
    in under the lock, once `first_index` is known, in the same transaction.  Like the
    ledger, the table is append-only (database triggers): a row, once written, is
    never changed.  (The benchmark's bare COPY leaves `first_index` empty.)"""

    first_index = models.BigIntegerField(null=True, unique=True)
    size = models.IntegerField()


class PredictionHour(models.Model):
    """Predictions per deployment and UTC hour, counted by the writer as it stores them
    (inference.provenance.writer, in the same transaction, under the ledger head lock),
    so that the overview and the explorer read a few hundred rows instead of counting
    millions.  A convenience for display only: the ledger, not this count, is the
    evidence.  `deployment_id` has no database constraint: it only names the deployment
    the rows in `Prediction` already refer to."""

    hour = models.DateTimeField()
    deployment = models.ForeignKey(Deployment, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False,
                                   db_index=False)
    n = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["hour", "deployment"], name="prediction_hour_unique")]


class Prediction(models.Model):
    """One prediction's provenance. `input_digest` and `output_digest` are salted
    commitments; the salt is kept in PredictionSalt, outside the ledger, so it can be erased.  Its ledger entry
    is `ledger_index` (from its batch; select_related("batch") when listing)."""

    inference_id = models.UUIDField(primary_key=True)
    # no index of its own: the (deployment, timestamp) index serves lookups by
    # deployment, and every index is paid for on each of millions of inserts
    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="predictions", db_index=False)
    engine_sha256 = models.CharField(max_length=64)
    # timestamp: served by the two composite indexes below. input_digest: a plain
    # index (db_index on a CharField would add a LIKE index nobody queries).
    timestamp = models.DateTimeField()
    input_digest = models.CharField(max_length=64)
    # "v2:" + 64 hex: salted with the prediction's salt (inference.digests); 64 bare hex
    # digits in entries written before, which stay linkable through their outputs
    output_digest = models.CharField(max_length=67)
    latency_us = models.IntegerField(null=True)
    # No index: a prediction's entry is found from the row (the batch's primary key),
    # and an entry names its prediction by inference id.  No database constraint: the
    # batch row is made by the same writer in the same transaction, and a per-row key
    # check cost a fifth of the ingest rate (bench provenance); trace still checks
    # that the entry this resolves to is the prediction's.
    batch = models.ForeignKey(PredictionBatch, on_delete=models.PROTECT, related_name="predictions",
                              db_index=False, db_constraint=False)
    batch_pos = models.IntegerField()

    class Meta:
        ordering = ["-timestamp"]
        indexes = [models.Index(fields=["deployment", "timestamp"]),
                   # the overview's per-hour counts read only these two columns: an
                   # index-only scan over the time window, whatever the table's size
                   models.Index(fields=["timestamp", "deployment"], name="prediction_time_deployment"),
                   models.Index(fields=["input_digest"], name="prediction_input_digest")]

    @property
    def ledger_index(self) -> int | None:
        """The index of this prediction's `prediction.recorded` entry; None when its
        batch row is missing (no writer of ours leaves a row so: trace reports it)."""
        try:
            first = self.batch.first_index
        except PredictionBatch.DoesNotExist:
            return None
        return None if first is None else first + self.batch_pos

    @staticmethod
    def entry_index_of(subject: str) -> int | None:
        """The ledger index of the prediction named by `subject` ("prediction:<uuid>"),
        without loading the row: registered with compliance.ledger.ledger.about, since
        the subject index leaves prediction entries out."""
        try:
            inference_id = uuid.UUID(subject.removeprefix("prediction:"))
        except ValueError:
            return None
        return Prediction.objects.filter(inference_id=inference_id).values_list(
            models.F("batch__first_index") + models.F("batch_pos"), flat=True).first()

    @property
    def outputs_linkable_without_salt(self) -> bool:
        """Whether this prediction's output digest is a legacy plain hash (written before
        output commitments were salted): erasing its salt does not unlink its outputs,
        which anyone with the engine can test guessed inputs against."""
        return not self.output_digest.startswith("v2:")

    def to_dict(self) -> dict:
        return self.ledger_payload() | {"latency_us": self.latency_us, "ledger_index": self.ledger_index}

    def ledger_payload(self) -> dict:
        return {
            "inference_id": str(self.inference_id),
            "deployment_id": self.deployment_id,
            "engine_sha256": self.engine_sha256,
            "timestamp": self.timestamp.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "input_digest": self.input_digest,
            "output_digest": self.output_digest,
        }


class PredictionSalt(models.Model):
    """The per-prediction salt of the input commitment. Deleting it (erasure request)
    unlinks the input from the ledger without touching the ledger."""

    inference_id = models.UUIDField(primary_key=True)
    salt = models.CharField(max_length=64)
