"""Trace a prediction back to the submitter, re-checking every link.

prediction → deployment → engine → build → ONNX model → commit → submitter
(→ training data, when the model records it).  Each link gets a verdict computed now,
from the stored files and signatures, never copied from a status column.
"""
from __future__ import annotations

import base64
import json
import uuid
from dataclasses import asdict, dataclass, field

from compliance.ledger import ledger
from compliance.lib.store import default_store
from compliance.models import LedgerEntry
from lineage.models import Prediction


@dataclass
class Link:
    kind: str
    label: str
    ok: bool
    verdict: str
    detail: str
    ref: dict = field(default_factory=dict)


@dataclass
class Trace:
    inference_id: str
    links: list[Link]
    prediction: Prediction | None = None

    @property
    def ok(self) -> bool:
        return bool(self.links) and all(link.ok for link in self.links)

    def to_dict(self) -> dict:
        return {"inference_id": self.inference_id, "ok": self.ok, "links": [asdict(l) for l in self.links]}


def _ledger_check(index: int | None, expected_kind: str) -> tuple[bool, str]:
    if index is None:
        return False, "no ledger entry recorded"
    entry = LedgerEntry.objects.filter(index=index).first()
    if entry is None:
        return False, f"ledger entry #{index} is missing"
    problem = ledger.check_entry(entry)
    if problem:
        return False, f"ledger entry #{index}: {problem}"
    if entry.kind != expected_kind:
        return False, f"ledger entry #{index} is {entry.kind}, expected {expected_kind}"
    return True, f"ledger entry #{index} intact"


def trace(inference_id: uuid.UUID) -> Trace:
    prediction = (
        # not joined to its batch: a row whose batch is missing must still be found
        Prediction.objects.select_related("deployment__engine__build__model").filter(inference_id=inference_id).first()
    )
    if prediction is None:
        return Trace(str(inference_id), [Link("prediction", "Prediction", False, "missing",
                                              f"no prediction with inference id {inference_id}")])
    links: list[Link] = []
    store = default_store()

    ok, detail = _ledger_check(prediction.ledger_index, "prediction.recorded")
    if ok:
        recorded = ledger.payload_of(LedgerEntry.objects.get(index=prediction.ledger_index))
        if recorded != prediction.ledger_payload():
            ok, detail = False, "prediction row differs from its ledger entry"
    links.append(Link("prediction", f"Prediction {prediction.inference_id}", ok, "verified" if ok else "altered",
                      detail, {"inference_id": str(prediction.inference_id), "timestamp": prediction.timestamp.isoformat(),
                               "input_digest": prediction.input_digest, "output_digest": prediction.output_digest,
                               "ledger_index": prediction.ledger_index}))

    deployment = prediction.deployment
    ok = deployment.engine_sha256 == prediction.engine_sha256 == deployment.engine.sha256
    dep_ok, dep_detail = _ledger_check(deployment.ledger_index, "deployment.created")
    links.append(Link(
        "deployment", f"Deployment {deployment.service}/{deployment.environment}", ok and dep_ok,
        "verified" if ok and dep_ok else "mismatch",
        ("deployment pins the engine that served the prediction; " + dep_detail) if ok else
        "prediction's engine digest differs from the deployment's pinned digest",
        {"deployment_id": deployment.id, "service": deployment.service, "environment": deployment.environment,
         "created_at": deployment.created_at.isoformat(), "created_by": deployment.created_by},
    ))

    engine = deployment.engine
    problem = store.verify(engine.sha256)
    if problem:
        verdict, detail = "digest_mismatch", problem
    else:
        verdict, detail = engine.verify_manifest(engine.sha256)
    links.append(Link("engine", f"Engine {engine.sha256[:12]}", verdict == "verified", verdict, detail,
                      {"engine_id": engine.id, "sha256": engine.sha256, "backend": engine.backend,
                       "backend_version": engine.backend_version, "precision": engine.precision,
                       "signing_key_id": engine.signing_key_id}))

    build = engine.build
    predicate = _signed_predicate(engine)
    params = predicate.get("buildDefinition", {}).get("externalParameters", {}) if predicate else {}
    b_ok, b_detail = _ledger_check(build.ledger_index, "build.requested")
    signed_matches = bool(params) and params.get("precision") == build.precision and params.get("backend") == build.backend
    ok = build.status == "succeeded" and b_ok and signed_matches
    links.append(Link("build", f"Build {build.id} ({build.backend}, {build.precision})", ok,
                      "verified" if ok else "mismatch",
                      f"status {build.status}; {b_detail}" + ("" if signed_matches else "; build record differs from the signed attestation"),
                      {"build_id": build.id, "status": build.status, "precision": build.precision,
                       "worker_host": build.worker_host, "device": _device_summary(build.device),
                       "started_at": build.started_at.isoformat() if build.started_at else None}))

    model = build.model
    problem = store.verify(model.sha256)
    signed_sha = params.get("model", {}).get("sha256") if params else None
    ok = problem is None and signed_sha == model.sha256
    links.append(Link("model", f"ONNX model {model.name}", ok, "verified" if ok else "digest_mismatch",
                      problem or ("ONNX file re-hashed and matches the signed attestation" if ok else
                                  "the signed attestation names another ONNX digest"),
                      {"model_id": model.id, "sha256": model.sha256, "opset": model.opset}))

    ok = bool(params) and params.get("commit") == build.commit and bool(build.commit)
    links.append(Link("commit", f"Commit {build.commit[:12]}", ok, "verified" if ok else "mismatch",
                      f"{build.repo} @ {build.commit}" + ("" if ok else " (differs from the signed attestation)"),
                      {"repo": build.repo, "commit": build.commit}))

    ok = bool(params) and params.get("submitter") == build.submitter
    links.append(Link("submitter", f"Submitter {build.submitter}", ok, "verified" if ok else "mismatch",
                      "named in the signed attestation" if ok else "differs from the signed attestation",
                      {"submitter": build.submitter}))

    if model.training_data_ref:
        links.append(Link("training_data", f"Training data {model.training_data_ref}", bool(model.training_data_sha256),
                          "recorded" if model.training_data_sha256 else "no digest",
                          f"sha256 {model.training_data_sha256 or 'not recorded'}; run {model.training_run_url or 'not recorded'}",
                          {"ref": model.training_data_ref, "sha256": model.training_data_sha256,
                           "training_run_url": model.training_run_url}))
    return Trace(str(inference_id), links, prediction)


def _device_summary(device: dict) -> str:
    if not device:
        return ""
    extras = [device.get("kind", ""), device.get("compute_capability", ""), ", ".join(device.get("execution_providers", []))]
    return f"{device.get('name', 'unknown device')} ({'; '.join(e for e in extras if e)})"


def _signed_predicate(engine) -> dict:
    try:
        envelope = json.loads(engine.manifest)
        payload = base64.b64decode(envelope["payload"])
        return json.loads(payload).get("predicate", {})
    except (ValueError, KeyError, TypeError):
        return {}
