"""The regulator report: a PDF made from Django templates with WeasyPrint.

It is written for people and says where every claim can be checked: the same chain
verdicts the offline verifier prints for the evidence bundle (computed here by running
that verifier on the bundle's bytes), next to the live re-checks of the stored files,
the build context and signed engine manifest, the deployment timeline, activity and
alerts, the signed checkpoint, and a table that maps each regulatory requirement to
the section that answers it.
"""
from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone

from compliance.investigation import retention, svgcharts
from compliance.investigation.evidence import Evidence
from compliance.ledger import notes
from compliance.ledger.offline.checks import verify_bytes
from compliance.ledger.offline.pinned import PinnedKey
from compliance.lib.store import default_store
from lineage.models import Deployment, EngineLoad, Prediction, PredictionSalt
from lineage.trace import trace

MAX_LISTED_PREDICTIONS = 25
LINK_NAMES = {"prediction": "Prediction", "deployment": "Deployment", "engine": "Engine", "build": "Build",
              "model": "ONNX model", "commit": "Commit", "submitter": "Submitter", "training_data": "Training data",
              "predictions": "Predictions"}


@dataclass
class Requirement:
    framework: str
    article: str
    demands: str
    answer: str
    where: str


def requirements(ctx: dict) -> list[Requirement]:
    """Each requirement the report is asked about, and where the report answers it."""
    days = ctx["retention"]["days"]
    first = ctx["entries"][0].get("index", "-") if ctx["entries"] else "-"
    pred_index = ctx["prediction_index"]
    return [
        Requirement("EU AI Act", "Art. 12 — record-keeping",
                    "High-risk AI systems automatically record events (logs) over their lifetime, enough to "
                    "trace the system's functioning and identify risk situations.",
                    "Every prediction, engine build, deployment, engine load and alert is written automatically "
                    "as a leaf of an append-only Merkle ledger at the moment it happens"
                    + (f"; this decision is ledger entry #{pred_index}" if pred_index is not None else "")
                    + f". The {ctx['entry_count']} entries this report relies on (from #{first}) are listed with "
                    "their leaf hashes and proven included in the signed checkpoint.",
                    "§2 Chain of provenance, §6 Activity and alerts, Appendix A"),
        Requirement("EU AI Act", "Art. 19 and Art. 26(6) — log retention",
                    "Providers and deployers keep the automatically generated logs for at least six months.",
                    "Ledger rows are never deleted or changed: database triggers refuse UPDATE, DELETE and TRUNCATE, "
                    "and any change would break the signed checkpoint. Retention "
                    f"(TRACELEDGER_RETENTION_DAYS = {days} days, at least 183) only erases input salts, which "
                    "unlinks personal data without touching a log entry; cases under legal hold are exempt.",
                    "§7 Ledger checkpoint, §1 Summary (retention)"),
        Requirement("GDPR", "Art. 22 — automated decision, contest, human review",
                    "The data subject may obtain human intervention, express their view and contest a decision "
                    "based solely on automated processing.",
                    "The report identifies the exact decision, the engine that made it and everything it was built "
                    "from, so a reviewer can re-examine it; the input is kept as a salted commitment, so the data "
                    "subject can disclose their input and anyone can check it against the ledger."
                    + (" A case records the human review and its decision." if ctx.get("case") else ""),
                    "§1 Summary" + (", Case" if ctx.get("case") else "") + ", §2 Chain, Appendix B"),
        Requirement("SR 11-7", "Model inventory",
                    "A comprehensive inventory of models in use, with their owners, sources and versions.",
                    "Each ONNX model is registered content-addressed with its sha256, repository, commit, "
                    "registrant, inputs and training-data reference; each engine records the model it was built from.",
                    "§3 Build context"),
        Requirement("SR 11-7", "Validation",
                    "Models are validated before use and their outputs monitored.",
                    "Every engine is deserialized and checked before it is signed; every load re-hashes the engine "
                    "and re-verifies its signed manifest, refusing and alerting otherwise; the chain is re-verified "
                    "for this report.",
                    "§2 Chain of provenance, §4 Engine manifest, §6 Activity and alerts"),
        Requirement("SR 11-7", "Change control",
                    "Changes to models are controlled, approved and documented.",
                    "Every build records who requested it, from which commit, with which settings, signed by the "
                    "build service; every deployment pins an engine digest and names who deployed it.",
                    "§3 Build context, §5 Deployment timeline"),
    ]


def _pretty_statement(manifest: str) -> tuple[dict, str, str]:
    envelope = json.loads(manifest)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    keyid = envelope["signatures"][0]["keyid"] if envelope.get("signatures") else ""
    return statement, json.dumps(statement, indent=2, sort_keys=True, ensure_ascii=False), keyid


def _chain_context(chain, store) -> dict:
    engine, build, model = chain.engine, chain.build, chain.model
    statement, pretty, keyid = _pretty_statement(engine.manifest)
    engine_problem = store.verify(engine.sha256)
    verdict, detail = ("digest_mismatch", engine_problem) if engine_problem else engine.verify_manifest(engine.sha256)
    return {
        "deployment": chain.deployment, "engine": engine, "build": build, "model": model,
        "statement": statement, "statement_json": pretty, "keyid": keyid,
        "engine_verdict": verdict, "engine_detail": detail,
        "model_problem": store.verify(model.sha256),
        "profiles": [(name, p) for name, p in (build.profiles or {}).items()],
        "device": [(k, ", ".join(map(str, v)) if isinstance(v, list) else str(v))
                   for k, v in sorted((build.device or {}).items())],
        "timings": sorted((build.timings or {}).items()),
        "entries": {role: e.index for role, e in chain.entries.items()},
    }


def _activity(evidence: Evidence, services: list[str], now: datetime) -> tuple[str, str]:
    if evidence.scope.kind == "service":
        start, end = evidence.scope.since, evidence.scope.until
        marker = None
    else:
        marker = evidence.predictions[0].timestamp
        end = min(marker + timedelta(hours=12), now)
        start = end - timedelta(hours=24)
        start = min(start, marker - timedelta(hours=1))
    times = list(Prediction.objects.filter(deployment__service__in=services, timestamp__gte=start,
                                           timestamp__lt=end).values_list("timestamp", flat=True)[:200_000])
    buckets, size = svgcharts.hourly_buckets(times, start, end)
    highlight = None
    if marker is not None:
        highlight = min(int((marker - start) / size), len(buckets) - 1)
    unit = "hour" if size <= timedelta(hours=1) else "bucket"
    caption = (f"Predictions of {', '.join(services)} per {unit}, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
               + ("; the disputed decision's hour in red." if marker is not None else "."))
    return svgcharts.bar_chart(buckets, highlight=highlight, y_label="predictions"), caption


def _timeline(evidence: Evidence, services: list[str], now: datetime) -> tuple[list[Deployment], str]:
    deployments = list(Deployment.objects.filter(service__in=services).select_related("engine__build")
                       .order_by("created_at")[:30])
    marker = evidence.predictions[0].timestamp if evidence.scope.kind != "service" else None
    if evidence.scope.kind == "service":
        start, end = evidence.scope.since, evidence.scope.until
    else:
        times = [d.created_at for d in deployments] + [marker]
        start, end = min(times), now
        start -= (end - start) * 0.04 + timedelta(minutes=1)
    multi = len(services) > 1
    spans = [svgcharts.Span(f"#{d.id} {d.service + '/' if multi else ''}{d.environment} · {d.engine.sha256[:8]} "
                            f"({d.engine.precision})", d.created_at, d.retired_at, d.retired_at is None,
                            f"deployed by {d.created_by} at {d.created_at:%Y-%m-%d %H:%M}") for d in deployments]
    svg = svgcharts.timeline_chart(spans, start, end, marker=marker, marker_label="disputed decision")
    return deployments, svg


def build_context(evidence: Evidence, bundle_bytes: bytes, *, generated_by: str, bundle_name: str = "",
                  now: datetime | None = None) -> dict:
    now = now or timezone.now()
    scope = evidence.scope
    store = default_store()
    bundle_sha = hashlib.sha256(bundle_bytes).hexdigest()
    # The same checks the regulator will run, against the keys we registered.
    b = json.loads(bundle_bytes)
    pinned = [PinnedKey(notes.parse_vkey(v).public_key) for v in b["keys"]["ledger"]]
    pinned += [PinnedKey(base64.b64decode(k)) for k in b["keys"]["build"]]
    offline = verify_bytes(bundle_bytes, pinned)

    chains = [_chain_context(c, store) for c in evidence.chains]
    services = sorted({c.deployment.service for c in evidence.chains})
    prediction = evidence.predictions[0] if scope.kind != "service" else None
    live = None
    if prediction is not None:
        live = trace(prediction.inference_id)
    offline_by_name: dict[str, list] = {}
    for check in offline.checks:
        offline_by_name.setdefault(check.name, []).append(check)
    chain_rows = []
    if live is not None:
        for link in live.links:
            name = link.kind if link.kind != "training_data" else "model"
            evidence_check = (offline_by_name.get(name) or [None])[0] if link.kind != "training_data" else None
            chain_rows.append({"kind": link.kind, "name": LINK_NAMES.get(link.kind, link.kind), "label": link.label, "ok": link.ok, "verdict": link.verdict,
                               "detail": link.detail, "offline": evidence_check})
    else:
        for check in offline.checks:
            if check.name in ("prediction", "deployment", "engine", "build", "model", "commit", "submitter", "predictions"):
                chain_rows.append({"kind": check.name, "name": LINK_NAMES.get(check.name, check.name),
                                   "label": check.label or check.detail, "ok": check.ok,
                                   "verdict": "verified" if check.ok else "failed", "detail": check.detail,
                                   "offline": check})

    cp_body, cp_sigs = notes.parse_note(evidence.note)
    cp = notes.parse_checkpoint(cp_body)
    entries = []
    all_entries = sorted(evidence.all_entries(), key=lambda e: e.index)
    many = [e.index for e in all_entries if e.kind == "prediction.recorded"]
    for e in all_entries:
        if e.kind == "prediction.recorded" and len(many) > MAX_LISTED_PREDICTIONS:
            continue
        entries.append({"index": e.index, "kind": e.kind, "subject": e.subject, "time": e.created_at,
                        "leaf_hash": e.leaf_hash})
    if len(many) > MAX_LISTED_PREDICTIONS:
        entries.append({"summary": f"and {len(many)} prediction.recorded entries between #{many[0]} and "
                                   f"#{many[-1]}, each with its body and inclusion proof in the evidence bundle"})
    deployments, timeline_svg = _timeline(evidence, services, now)
    activity_svg, activity_caption = _activity(evidence, services, now)
    loads = EngineLoad.objects.filter(service__in=services, created_at__gte=evidence.period[0],
                                      created_at__lt=max(evidence.period[1], now))
    load_counts = sorted(Counter(loads.values_list("verdict", flat=True)).items())

    days = retention.retention_days()
    retention_info = {"days": days}
    if prediction is not None:
        held = retention.held_inference_ids()
        retention_info |= {
            "salt_kept": PredictionSalt.objects.filter(inference_id=prediction.inference_id).exists(),
            "erase_after": prediction.timestamp + timedelta(days=days),
            "legal_hold": prediction.inference_id in held or bool(getattr(scope.case, "legal_hold", False)),
        }
    case = None
    if scope.kind == "case":
        c = scope.case
        case = {"id": c.pk, "kind": c.get_kind_display(), "status": c.get_status_display(), "summary": c.summary,
                "opened_by": c.opened_by, "opened_at": c.opened_at,
                "notes": [{"author": n.author, "text": n.text, "created_at": n.created_at} for n in c.notes.all()],
                "outcome": c.get_outcome_display() if c.outcome else "", "decision_reason": c.decision_reason,
                "decided_by": c.decided_by, "decided_at": c.decided_at, "legal_hold": c.legal_hold,
                "events": [{"index": e.index, "kind": e.kind, "actor": json.loads(e.body)["actor"], "time": e.created_at}
                           for e in evidence.case_entries]}
    lead = chains[0] if chains else None
    ctx = {
        "title": {"prediction": "Provenance report", "case": "Case provenance report",
                  "service": "Service provenance report"}[scope.kind],
        "report_id": f"TL-{now:%Y%m%d}-{bundle_sha[:8].upper()}",
        "scope": scope, "scope_label": scope.label, "generated_at": now, "generated_by": generated_by,
        "prediction": prediction, "prediction_index": prediction.ledger_index if prediction else None,
        "predictions_in_scope": evidence.predictions_in_scope, "predictions_in_bundle": len(evidence.predictions),
        "lead": lead, "chains": chains, "chain_rows": chain_rows,
        "live_ok": live.ok if live is not None else all(
            c["engine_verdict"] == "verified" and not c["model_problem"] for c in chains),
        "offline": offline, "verified": offline.ok and (live.ok if live is not None else True),
        "deployments": deployments, "timeline_svg": timeline_svg,
        "activity_svg": activity_svg, "activity_caption": activity_caption,
        "loads": list(loads.order_by("-created_at")[:25]), "load_counts": load_counts,
        "alerts": [a for a, _ in evidence.alerts], "alerts_total": evidence.alerts_in_period,
        "alert_entries": {a.id: e.index for a, e in evidence.alerts},
        "period": evidence.period,
        "checkpoint": {"model": evidence.checkpoint, "note": evidence.note, "origin": cp.origin, "size": cp.size,
                       "root_hex": cp.root_hash.hex(), "root_b64": base64.b64encode(cp.root_hash).decode(),
                       "signatures": [{"name": s.name, "key_id": s.key_id.hex()} for s in cp_sigs],
                       "ledger_vkeys": evidence.ledger_vkeys, "witness_vkeys": evidence.witness_vkeys},
        "build_keys": [{"public_key": k, "key_id": hashlib.sha256(base64.b64decode(k)).hexdigest()}
                       for k in evidence.build_keys],
        "entries": entries, "entry_count": len(all_entries),
        "bundle": {"sha256": bundle_sha, "size": len(bundle_bytes), "name": bundle_name},
        "disclosed": evidence.disclosed,
        "retention": retention_info, "case": case,
        "origin": settings.TRACELEDGER_LOG_ORIGIN,
    }
    ctx["requirements"] = requirements(ctx)
    return ctx


def render_html(context: dict) -> str:
    return render_to_string("reports/report.html", context)


def render_pdf(context: dict) -> bytes:
    from weasyprint import HTML

    return HTML(string=render_html(context), base_url=str(settings.BASE_DIR)).write_pdf()
