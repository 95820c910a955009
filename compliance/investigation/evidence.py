"""Evidence bundles (traceledger-evidence/v2) for one prediction, a case, or a service
over a time window.

`collect(scope)` reads once what an export is about: the records, the ledger entries
that recorded them, a signed checkpoint covering all of them (made on the spot when the
latest one is older), an inclusion proof per entry, and the public keys.  `to_bundle()`
lays that out for `compliance.verify_bundle`, which re-checks all of it with no database:

    records       each exactly the payload of its ledger entry ("record" + "entry")
    entries       the exact canonical body text, its index and its inclusion proof
    engine        the DSSE envelope text, byte for byte as stored and pinned
    checkpoint    the signed note with the cosignature lines of known witnesses
    keys          ledger and witness keys as C2SP vkeys, build keys as raw base64
    key_events    every key entry below the checkpoint's size: the registry the
                  checkpoint commits to, so none can be left out
    signature     the ledger key's signature over all of the above: signed as a whole
"""
from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.db.models import Q
from django.utils import timezone

from compliance.ledger import checkpoints, keyevents, keylog, keys, merkle, notes, tree
from compliance.ledger.offline import completeness
from compliance.ledger.offline.parse import FORMAT, encode_bundle
from compliance.models import Alert, Case, Checkpoint, LedgerEntry
from lineage.models import Deployment, Prediction

MAX_ALERTS = 200
BATCH = 500  # predictions read and proved at a time
ALERT_WINDOW = timedelta(days=7)


class ExportError(ValueError):
    """Bad export request: one line, shown as is."""


@dataclass
class Scope:
    kind: str  # prediction | case | service
    inference_id: uuid.UUID | None = None
    case: object | None = None
    service: str = ""
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def for_prediction(cls, inference_id: uuid.UUID) -> "Scope":
        if not Prediction.objects.filter(inference_id=inference_id).exists():
            raise ExportError(f"no prediction with inference id {inference_id}")
        return cls("prediction", inference_id=inference_id)

    @classmethod
    def for_case(cls, case_id: int) -> "Scope":
        case = Case.objects.filter(pk=case_id).first()
        if case is None:
            raise ExportError(f"no case {case_id}")
        return cls("case", inference_id=case.prediction_id, case=case)

    @classmethod
    def for_service(cls, service: str, since: datetime, until: datetime) -> "Scope":
        if since.tzinfo is None or until.tzinfo is None:
            raise ExportError("--since and --until need a time zone (e.g. 2026-01-31T00:00:00Z)")
        if since >= until:
            raise ExportError("--since must be before --until")
        if not Deployment.objects.filter(service=service).exists():
            raise ExportError(f"no deployment of service {service!r}")
        return cls("service", service=service, since=since, until=until)

    def to_dict(self) -> dict:
        if self.kind == "service":
            return {"kind": "service", "service": self.service, "since": _iso(self.since), "until": _iso(self.until)}
        data = {"kind": self.kind, "inference_id": str(self.inference_id)}
        if self.kind == "case":
            data["case_id"] = self.case.pk
        return data

    @property
    def subject(self) -> str:
        if self.kind == "service":
            return f"service:{self.service}"
        if self.kind == "case":
            return f"case:{self.case.pk}"
        return f"prediction:{self.inference_id}"

    @property
    def label(self) -> str:
        if self.kind == "service":
            since, until = (t.astimezone(dt_timezone.utc) for t in (self.since, self.until))
            return f"service {self.service}, {since:%Y-%m-%d %H:%M:%S} to {until:%Y-%m-%d %H:%M:%S} UTC"
        if self.kind == "case":
            return f"case {self.case.pk} (prediction {self.inference_id})"
        return f"prediction {self.inference_id}"


def _iso(when: datetime) -> str:
    return when.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z")


def parse_time(text: str, what: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ExportError(f"{what} {text!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise ExportError(f"{what} {text!r} needs a time zone, e.g. 2026-01-31T00:00:00Z")
    return when


@dataclass
class Chain:
    """One deployment and what it stands on, with the ledger entry of each record."""

    deployment: Deployment
    entries: dict[str, LedgerEntry]  # deployment, build, build_started, build_succeeded, model

    @property
    def engine(self):
        return self.deployment.engine

    @property
    def build(self):
        return self.deployment.engine.build

    @property
    def model(self):
        return self.deployment.engine.build.model


@dataclass
class Evidence:
    scope: Scope
    checkpoint: Checkpoint
    predictions: list[Prediction]
    prediction_entries: dict[uuid.UUID, LedgerEntry]
    predictions_in_scope: int
    chains: list[Chain]
    alerts: list[tuple[Alert, LedgerEntry]]
    alerts_in_period: int
    period: tuple[datetime, datetime]
    case_entries: list[LedgerEntry]
    key_entries: list[LedgerEntry]
    ledger_vkeys: list[str]
    build_keys: list[str]
    witness_vkeys: list[str]
    note: str
    proofs: dict[int, list[bytes]] = field(default_factory=dict)
    disclosed: dict | None = None

    def all_entries(self) -> list[LedgerEntry]:
        found = list(self.prediction_entries.values()) + [e for c in self.chains for e in c.entries.values()]
        found += [e for _, e in self.alerts] + self.case_entries + self.key_entries
        return list({e.index: e for e in found}.values())

    def to_bundle(self) -> dict:
        return {
            "format": FORMAT,
            "scope": self.scope.to_dict(),
            "checkpoint": {"note": self.note},
            "keys": {"ledger": self.ledger_vkeys, "build": self.build_keys, "witness": self.witness_vkeys},
            "key_events": [self._attested(e) for e in self.key_entries],
            "predictions": [self._attested(self.prediction_entries[p.inference_id]) for p in self.predictions],
            "deployments": [
                {"deployment": self._attested(c.entries["deployment"]), "engine_manifest": c.engine.manifest,
                 "build": self._attested(c.entries["build"]), "build_started": self._attested(c.entries["build_started"]),
                 "build_succeeded": self._attested(c.entries["build_succeeded"]),
                 "model": self._attested(c.entries["model"])}
                for c in self.chains
            ],
            "alerts": [self._attested(e) for _, e in self.alerts],
            "case_events": [self._attested(e) for e in self.case_entries],
            "disclosed_input": self.disclosed,
        }

    def key_files(self) -> dict[str, str]:
        """The public keys of this bundle as files a verifier can pin with --key, each
        stating the one purpose it is trusted for (compliance.ledger.purposes)."""
        def key_file(purpose: str, what: str, lines: list[str]) -> str:
            return f"# TraceLedger {purpose} key: {what}, nothing else\npurpose: {purpose}\n" + "".join(
                line + "\n" for line in lines)

        files = {"ledger.vkey": key_file("ledger", "signs checkpoints under the log's origin", self.ledger_vkeys),
                 "build.pub": key_file("build", "signs engine manifests", self.build_keys)}
        if self.witness_vkeys:
            files["witness.vkey"] = key_file("witness", "cosigns checkpoints", self.witness_vkeys)
        return files

    def bundle_bytes(self) -> bytes:
        """The bundle signed as a whole by the ledger key that signed its checkpoint."""
        signer = keys.get_signer("ledger")
        if signer.key_id != self.checkpoint.key_id:
            raise ExportError("the ledger key changed since the checkpoint was signed: export again")
        return encode_bundle(completeness.sign(self.to_bundle(), signer.key_id, signer.sign))

    def _attested(self, entry: LedgerEntry) -> dict:
        return {"record": json.loads(entry.body)["payload"],
                "entry": {"index": entry.index, "body": entry.body,
                          "proof": [base64.b64encode(h).decode() for h in self.proofs[entry.index]]}}


def _entry(index: int | None, what: str) -> LedgerEntry:
    entry = LedgerEntry.objects.filter(index=index).first() if index is not None else None
    if entry is None:
        raise ExportError(f"{what} has no ledger entry: it cannot be evidenced")
    return entry


def _by_subject(kind: str, subject: str, what: str) -> LedgerEntry:
    entry = LedgerEntry.objects.of_kind(kind).filter(subject=subject).order_by("index").first()
    if entry is None:
        raise ExportError(f"{what} has no {kind} ledger entry: it cannot be evidenced")
    return entry


def _chain(deployment: Deployment) -> Chain:
    engine = deployment.engine
    build = engine.build
    return Chain(deployment, {
        "deployment": _entry(deployment.ledger_index, f"deployment {deployment.id}"),
        "build": _entry(build.ledger_index, f"build {build.id}"),
        "build_started": _by_subject("build.started", f"build:{build.id}", f"build {build.id}"),
        "build_succeeded": _by_subject("build.succeeded", f"build:{build.id}", f"build {build.id}"),
        "model": _entry(build.model.ledger_index, f"model {build.model.sha256[:12]}"),
    })


def _case_entries(case) -> list[LedgerEntry]:
    found = []
    for entry in LedgerEntry.objects.indexed().filter(kind__startswith="case.").order_by("index"):
        payload = json.loads(entry.body)["payload"]
        if entry.subject == f"case:{case.pk}" or payload.get("case_id") == case.pk:
            found.append(entry)
    return found


def collect(scope: Scope, *, max_predictions: int = 1000, now: datetime | None = None, progress=None) -> Evidence:
    """Everything an export of `scope` carries.  `progress(done, total)` is told the
    predictions proved so far (their entries read, their inclusion proofs made),
    batch by batch."""
    now = now or timezone.now()
    report = progress or (lambda done, total: None)
    related = Prediction.objects.select_related("deployment__engine__build__model", "batch")
    if scope.kind == "service":
        in_window = related.filter(deployment__service=scope.service, timestamp__gte=scope.since,
                                   timestamp__lt=scope.until).order_by("timestamp")
        predictions = list(in_window[:max_predictions])
        total = in_window.count()
        deployments = {d.id: d for d in Deployment.objects.select_related("engine__build__model").filter(
            service=scope.service, created_at__lt=scope.until).filter(
            Q(retired_at=None) | Q(retired_at__gt=scope.since)).order_by("created_at")}
        period = (scope.since, scope.until)
    else:
        predictions = [related.get(inference_id=scope.inference_id)]
        total = 1
        deployments = {}
        stamp = predictions[0].timestamp
        period = (stamp - ALERT_WINDOW, min(stamp + ALERT_WINDOW, now))
    report(0, len(predictions))
    for p in predictions:
        deployments.setdefault(p.deployment_id, p.deployment)
    chains = [_chain(d) for d in sorted(deployments.values(), key=lambda d: (d.created_at, d.id))]
    prediction_entries = _prediction_entries(predictions)

    alert_rows = Alert.objects.filter(created_at__gte=period[0], created_at__lt=period[1], ledger_index__isnull=False)
    alerts_total = alert_rows.count()
    alert_rows = list(alert_rows.order_by("-created_at")[:MAX_ALERTS])
    by_index = LedgerEntry.objects.in_bulk([a.ledger_index for a in alert_rows])
    alerts = [(a, by_index[a.ledger_index]) for a in alert_rows if a.ledger_index in by_index]
    case_entries = _case_entries(scope.case) if scope.kind == "case" else []

    evidence = Evidence(scope, None, predictions, prediction_entries, total, chains, alerts, alerts_total, period,
                        case_entries, [], [], [], [], "")
    needed = max(e.index for e in evidence.all_entries())
    _checkpoint_and_keys(evidence, needed)
    size, nodes, proofs = evidence.checkpoint.size, {}, {}
    for start in range(0, len(predictions), BATCH):
        batch = predictions[start:start + BATCH]
        proofs.update(inclusion_proofs([prediction_entries[p.inference_id].index for p in batch], size, nodes))
        report(start + len(batch), len(predictions))
    proofs.update(inclusion_proofs([e.index for e in evidence.all_entries() if e.index not in proofs], size, nodes))
    evidence.proofs = proofs
    return evidence


def _prediction_entries(predictions: list[Prediction]) -> dict[uuid.UUID, LedgerEntry]:
    """The ledger entry of each prediction, read `BATCH` at a time."""
    found = {}
    for start in range(0, len(predictions), BATCH):
        batch = predictions[start:start + BATCH]
        rows = LedgerEntry.objects.in_bulk([p.ledger_index for p in batch if p.ledger_index is not None])
        for p in batch:
            if p.ledger_index not in rows:
                raise ExportError(f"prediction {p.inference_id} has no ledger entry: it cannot be evidenced")
            found[p.inference_id] = rows[p.ledger_index]
    return found


def _checkpoint_and_keys(evidence: Evidence, needed: int) -> None:
    checkpoint = checkpoints.latest()
    # the bundle is signed by the key that signed its checkpoint: the current one
    if checkpoint is None or checkpoint.size <= needed or checkpoint.key_id != keys.get_signer("ledger").key_id:
        checkpoint = checkpoints.make_checkpoint()
    evidence.checkpoint = checkpoint
    # keys as the ledger registered them, never as the key table says
    log = keyevents.load(upto=checkpoint.size)
    ledger_key = log.get(checkpoint.key_id)
    if ledger_key is None:
        raise ExportError(f"the key {checkpoint.key_id[:16]} that signed checkpoint {checkpoint.id} is not registered")
    # Witness cosignatures are stored beside the (append-only) checkpoint; appended to
    # its note they give the witnessed note that travels in the bundle.
    full_note = checkpoint.note + "".join(c.line for c in checkpoint.cosignatures.order_by("id"))
    body, sigs = notes.parse_note(full_note)
    origin = notes.parse_checkpoint(body).origin
    ledger_raw = base64.b64decode(ledger_key.public_key)
    known = {(origin, notes.key_id(origin, ledger_raw)): None}
    ledger_vkey = notes.format_vkey(origin, ledger_raw)
    witnesses: dict[tuple[str, bytes], str] = {}
    # a witness registers its key when it first cosigns, after the checkpoint it signs
    for key in keyevents.load().of_purpose("witness"):
        raw = base64.b64decode(key.public_key)
        for sig in sigs:
            for sig_type in (notes.SIG_COSIGNATURE_V1, notes.SIG_ED25519):
                if notes.key_id(sig.name, raw, sig_type) == sig.key_id:
                    witnesses[(sig.name, sig.key_id)] = notes.format_vkey(sig.name, raw, sig_type)
    # Keep only signature lines whose key travels with the bundle: a line that no key
    # in the bundle can check would be bytes that nothing verifies.
    block = full_note[len(body) + 1:]
    kept = [line for line, sig in zip(block[:-1].split("\n"), sigs)
            if (sig.name, sig.key_id) in known or (sig.name, sig.key_id) in witnesses]
    evidence.note = body + "\n" + "".join(line + "\n" for line in kept)
    evidence.ledger_vkeys = [ledger_vkey]
    evidence.witness_vkeys = sorted(set(witnesses.values()))

    build_ids = sorted({c.engine.signing_key_id for c in evidence.chains})
    build_rows = {k.key_id: k for k in log.of_purpose("build") if k.key_id in build_ids}
    missing = [k for k in build_ids if k not in build_rows]
    if missing:
        raise ExportError(f"build key {missing[0][:16]} is not registered")
    evidence.build_keys = [build_rows[k].public_key for k in build_ids]

    # every key event below the checkpoint: the registry its extension line commits to
    key_entries = list(LedgerEntry.objects.of_kind(*keylog.KEY_KINDS).filter(index__lt=checkpoint.size)
                       .order_by("index"))
    evidence.key_entries = key_entries


def inclusion_proofs(indices: list[int], size: int, nodes: dict | None = None) -> dict[int, list[bytes]]:
    """Inclusion proofs for many entries at one tree size, reading every node once;
    `nodes` (a dict) keeps the nodes read for the next call at the same size."""
    needed = {i: merkle.nodes_needed_for_inclusion(i, size) for i in set(indices) if size > 1}
    nodes = {} if nodes is None else nodes
    keys = sorted({k for ks in needed.values() for k in ks if k not in nodes})
    reader = tree.DbNodeReader()
    for start in range(0, len(keys), 2000):
        nodes.update(reader.get_many(keys[start:start + 2000]))
    return {i: (merkle.inclusion_proof(i, size, nodes) if size > 1 else []) for i in set(indices)}


def disclosed_input(prediction: Prediction, arrays: dict, salt_hex: str) -> dict:
    """The bundle's form of a data subject's input and its salt, once
    compliance.investigation.disclosure has found that they open the commitment (only
    that guarded path calls this)."""
    import numpy as np

    tensors = []
    for name in sorted(arrays):
        array = np.asarray(arrays[name])
        if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and not np.little_endian):
            array = array.astype(array.dtype.newbyteorder("<"))  # the commitment hashes little-endian bytes
        array = array if array.flags.c_contiguous else array.copy(order="C")  # as inference.digests encodes it (shape kept, 0-d too)
        tensors.append({"name": name, "dtype": array.dtype.str.replace("|", "<"), "shape": list(array.shape),
                        "data": base64.b64encode(array.tobytes(order="C")).decode()})
    return {"inference_id": str(prediction.inference_id), "salt": salt_hex, "tensors": tensors}
