"""Regulator reports and evidence bundles, on the demo dataset: `export_report` for a
prediction, a case and a service window; the offline verifier (also in a virtualenv
that has nothing but `cryptography`); single-byte edits, forged re-signed bundles; the
PDF rendered and read back; the dashboard exports."""
from __future__ import annotations

import base64
import copy
import hashlib
import importlib.util
import io
import json
import os
import random
import shutil
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from pypdf import PdfReader

from compliance.investigation.evidence import Scope
from compliance.investigation.exports import do_export_report
from compliance.ledger import dsse, keylog, ledger, merkle, notes
from compliance.ledger.canonical import canonical_json
from compliance.ledger.keys import public_raw
from compliance.ledger.offline import completeness
from compliance.models import LedgerEntry
from compliance.verify_bundle import encode_bundle, load_key_file, verify_bytes
from inference import samples
from inference.runtime import AuditedService
from lineage.models import Build, Prediction, PredictionSalt
from tests.conftest import ROOT, Worker
from tests.terminal import Terminal, counted

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]
# The offline verifier and everything it imports: copied alone into a virtualenv that has
# only cryptography, so an import of anything else fails the test.
VERIFIER_FILES = ("__init__.py", "verify_bundle.py", "ledger/__init__.py", "ledger/merkle.py", "ledger/notes.py",
                  "ledger/dsse.py", "ledger/purposes.py", "ledger/keylog.py", "ledger/trustfile.py",
                  *(f"ledger/offline/{name}.py" for name in (
                      "__init__", "__main__", "checks", "commitments", "completeness", "disclosure", "parse", "pinned",
                      "receipt", "report", "results")))


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    """The demo dataset (300 predictions), seeded once for this module and flushed after."""
    with django_db_blocker.unblock():
        worker = None
        if settings.REDIS_URL:
            import redis

            redis.Redis.from_url(settings.REDIS_URL).flushdb()
            worker = Worker().start()
        try:
            out = io.StringIO()
            call_command("demo", predictions=300, json=True, stdout=out)
        finally:
            if worker:
                worker.stop()
    state = json.loads(out.getvalue())
    yield state
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)
    (settings.TRACELEDGER_HOME / "demo.json").unlink(missing_ok=True)


def export(tmp_path, *args) -> dict:
    out = io.StringIO()
    call_command("export_report", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def run_verifier(*args, python=sys.executable, cwd=ROOT, env=None):
    return subprocess.run([python, "-m", "compliance.verify_bundle", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def key_lines(path: Path) -> list[str]:
    """The keys of a key file, without its comment and purpose lines."""
    return [line for line in path.read_text().splitlines() if line and not line.startswith(("#", "purpose:"))]


def pins(keys_dir: Path):
    return load_key_file(keys_dir / "ledger.vkey") + load_key_file(keys_dir / "build.pub")


def test_it_exports_a_bundle_that_verifies_offline(demo, tmp_path):
    iid = demo["disputed_inference_id"]
    data = export(tmp_path, iid, "--bundle", tmp_path / "b.json", "--pdf", tmp_path / "r.pdf", "--keys", tmp_path)
    raw = (tmp_path / "b.json").read_bytes()
    assert data["files"]["bundle"]["sha256"] == hashlib.sha256(raw).hexdigest()
    assert data["files"]["pdf"]["sha256"] == hashlib.sha256((tmp_path / "r.pdf").read_bytes()).hexdigest()
    assert {(tmp_path / name).stat().st_mode & 0o777 for name in ("b.json", "r.pdf")} == {0o600}

    # the export is a ledger entry naming who exported what, with the files' digests
    entry = LedgerEntry.objects.get(index=data["ledger_index"])
    assert entry.kind == "report.exported" and entry.subject == f"prediction:{iid}"
    payload = ledger.payload_of(entry)
    assert payload["files"] == {k: {"sha256": v["sha256"], "bytes": v["bytes"]} for k, v in data["files"].items()
                                if k in ("pdf", "bundle")}
    assert payload["scope"] == {"kind": "prediction", "inference_id": iid}
    assert json.loads(entry.body)["actor"]

    bundle = json.loads(raw)
    assert bundle["format"] == "traceledger-evidence/v2"
    assert bundle["checkpoint"]["note"].startswith(settings.TRACELEDGER_LOG_ORIGIN + "\n")
    build = Build.objects.get(engine__deployments__predictions__inference_id=iid)
    chain = bundle["deployments"][0]
    assert chain["build"]["record"]["submitter"] == build.submitter == "maria.chen"
    assert chain["engine_manifest"] == build.engine.manifest
    for ar in [*bundle["predictions"], *chain.values()]:
        if isinstance(ar, dict):  # exact canonical body as stored
            assert ar["entry"]["body"] == LedgerEntry.objects.get(index=ar["entry"]["index"]).body

    pinned = run_verifier(tmp_path / "b.json", "--key", tmp_path / "ledger.vkey", "--key", tmp_path / "build.pub")
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    assert "VERIFIED" in pinned.stdout and "WARNING" not in pinned.stdout
    for link in ("prediction", "deployment", "engine", "build", "model", "commit", "submitter", "checkpoint"):
        assert f"PASS  {link}" in pinned.stdout, link
    unpinned = run_verifier(tmp_path / "b.json")
    assert unpinned.returncode == 0
    assert "keys taken from the bundle itself — pin them with --key" in unpinned.stdout


def test_it_fails_verification_for_any_single_flipped_byte(demo, tmp_path):
    export(tmp_path, demo["disputed_inference_id"], "--bundle", tmp_path / "b.json")
    raw = (tmp_path / "b.json").read_bytes()
    assert verify_bytes(raw).ok
    rng = random.Random(7)
    positions = rng.sample(range(len(raw)), 200)
    for pos in positions:
        for mask in (1 << rng.randrange(8), rng.randrange(1, 256)):
            edited = bytearray(raw)
            edited[pos] ^= mask
            result = verify_bytes(bytes(edited))
            assert not result.ok, f"flipping byte {pos} with {mask:#04x} went unnoticed: {raw[pos - 30:pos + 30]!r}"


def test_it_reports_an_edited_record_on_its_link(demo, tmp_path):
    export(tmp_path, demo["disputed_inference_id"], "--bundle", tmp_path / "b.json")
    bundle = json.loads((tmp_path / "b.json").read_bytes())
    bundle["deployments"][0]["build"]["record"]["submitter"] = "someone.else"
    result = verify_bytes(encode_bundle(bundle))
    failed = {c.name: c.detail for c in result.checks if not c.ok}
    assert "build" in failed and "differs from the payload of ledger entry" in failed["build"]
    assert "submitter" in failed


def forge(bundle: dict) -> bytes:
    """A self-consistent forgery: another submitter in the build record and the signed
    statement, the manifest re-signed with a rogue build key, every entry re-made in a
    rogue tree whose checkpoint a rogue ledger key signs."""
    rogue_ledger, rogue_build = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    b = copy.deepcopy(bundle)
    build_raw = public_raw(rogue_build.public_key())
    build_kid = hashlib.sha256(build_raw).hexdigest()
    chain = b["deployments"][0]
    envelope = json.loads(chain["engine_manifest"])
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["buildDefinition"]["externalParameters"]["submitter"] = "mallory"
    manifest = json.dumps(dsse.sign_envelope(canonical_json(statement), build_kid, rogue_build.sign), sort_keys=True)
    manifest_sha = hashlib.sha256(manifest.encode()).hexdigest()
    chain["engine_manifest"] = manifest
    chain["build"]["record"]["submitter"] = "mallory"
    chain["build_succeeded"]["record"] |= {"manifest_sha256": manifest_sha, "signing_key_id": build_kid}
    chain["deployment"]["record"]["manifest_sha256"] = manifest_sha
    origin = notes.parse_checkpoint(notes.parse_note(b["checkpoint"]["note"])[0]).origin
    ledger_raw = public_raw(rogue_ledger.public_key())
    b["key_events"] = [e for e in b["key_events"] if e["record"].get("purpose") in ("ledger", "build")
                       and json.loads(e["entry"]["body"])["kind"] == "key.registered"]
    for reg in b["key_events"]:
        raw = ledger_raw if reg["record"]["purpose"] == "ledger" else build_raw
        reg["record"] = {"public_key": base64.b64encode(raw).decode(), "key_id": hashlib.sha256(raw).hexdigest(),
                         "purpose": reg["record"]["purpose"], "algorithm": "ed25519"}
    attested = [*b["predictions"], *b["alerts"], *b["key_events"],
                *[v for c in b["deployments"] for v in c.values() if isinstance(v, dict)]]
    size = notes.parse_checkpoint(notes.parse_note(b["checkpoint"]["note"])[0]).size
    leaves = [hashlib.sha256(os.urandom(8)).digest() for _ in range(size)]
    for ar in attested:
        body = json.loads(ar["entry"]["body"])
        body["payload"] = ar["record"]
        if body["kind"] == "build.requested":
            body["actor"] = "mallory"
        ar["entry"]["body"] = canonical_json(body).decode()
        leaves[ar["entry"]["index"]] = merkle.leaf_hash(ar["entry"]["body"].encode())
    nodes = merkle.DictNodeReader()
    nodes.store(merkle.nodes_for_batch(0, leaves, nodes))
    root = merkle.root(size, nodes)
    for ar in attested:
        ar["entry"]["proof"] = [base64.b64encode(h).decode() for h in merkle.inclusion_proof(ar["entry"]["index"], size, nodes)]
    registry = keylog.registry_line(*keylog.registry_digest(merkle.leaf_hash(e["entry"]["body"].encode())
                                                            for e in b["key_events"]))
    b["checkpoint"]["note"] = notes.sign_note(notes.format_checkpoint(origin, size, root, [registry]), origin,
                                              rogue_ledger)
    b["keys"] = {"ledger": [notes.format_vkey(origin, ledger_raw)], "build": [base64.b64encode(build_raw).decode()],
                 "witness": []}
    return encode_bundle(completeness.sign(b, hashlib.sha256(ledger_raw).hexdigest(), rogue_ledger.sign))


def test_it_rejects_a_bundle_re_signed_with_a_key_that_is_not_pinned(demo, tmp_path):
    export(tmp_path, demo["disputed_inference_id"], "--bundle", tmp_path / "b.json", "--keys", tmp_path)
    forged = forge(json.loads((tmp_path / "b.json").read_bytes()))
    (tmp_path / "forged.json").write_bytes(forged)
    # consistent in itself: with the keys it brings along, it passes...
    assert verify_bytes(forged).ok, verify_bytes(forged).to_dict()
    # ...and that is why keys are pinned: with ours, it fails.
    result = verify_bytes(forged, pins(tmp_path))
    failed = {c.name: c.detail for c in result.checks if not c.ok}
    assert "not pinned" in failed["checkpoint"] and "not pinned" in failed["engine"]
    cli = run_verifier(tmp_path / "forged.json", "--key", tmp_path / "ledger.vkey", "--key", tmp_path / "build.pub")
    assert cli.returncode == 1 and "FAILED" in cli.stdout
    # pinning accepts a PEM public key or a raw base64 key as well as a vkey
    ledger_raw = notes.parse_vkey(key_lines(tmp_path / "ledger.vkey")[0]).public_key
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    pem = Ed25519PublicKey.from_public_bytes(ledger_raw).public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "ledger.pem").write_bytes(pem)
    ok = run_verifier(tmp_path / "b.json", "--key", f"ledger={tmp_path / 'ledger.pem'}", "--key", tmp_path / "build.pub")
    assert ok.returncode == 0, ok.stdout
    bad_key = run_verifier(tmp_path / "b.json", "--key", tmp_path / "b.json")
    assert bad_key.returncode == 2 and "not a vkey" in bad_key.stderr


def test_it_carries_and_checks_witness_cosignatures(demo, tmp_path):
    from compliance.ledger import checkpoints, keys
    from compliance.models import Checkpoint

    latest = checkpoints.make_checkpoint()
    witness = keys.get_signer("witness")
    stranger = Ed25519PrivateKey.generate()
    note = notes.add_cosignature(latest.note, "witness.example/w1", witness.private_key, 1_790_000_000)
    note = notes.add_cosignature(note, "stranger.example/w9", stranger, 1_790_000_001)
    Checkpoint.objects.create(size=latest.size, root_hash=latest.root_hash, note=note, key_id=latest.key_id)

    export(tmp_path, demo["disputed_inference_id"], "--bundle", tmp_path / "b.json", "--keys", tmp_path)
    raw = (tmp_path / "b.json").read_bytes()
    bundle = json.loads(raw)
    assert "witness.example/w1" in bundle["checkpoint"]["note"]
    assert "stranger.example" not in bundle["checkpoint"]["note"]  # no key for it: nothing could check it
    assert bundle["keys"]["witness"] == key_lines(tmp_path / "witness.vkey")
    cosigned = {c.name: c for c in verify_bytes(raw).checks}["checkpoint"]
    assert cosigned.ok and "cosigned by witness.example/w1 at 2026-09-21" in cosigned.detail
    assert "(key from the bundle)" in cosigned.detail
    pinned = verify_bytes(raw, pins(tmp_path) + load_key_file(tmp_path / "witness.vkey"))
    assert pinned.ok and "(pinned)" in {c.name: c for c in pinned.checks}["checkpoint"].detail

    line = next(l for l in bundle["checkpoint"]["note"].splitlines() if "witness.example/w1" in l)
    sig = bytearray(base64.b64decode(line.split(" ")[2]))
    sig[-1] ^= 1
    bundle["checkpoint"]["note"] = bundle["checkpoint"]["note"].replace(
        line, f"{line.split(' ')[0]} witness.example/w1 {base64.b64encode(bytes(sig)).decode()}")
    failed = {c.name: c.detail for c in verify_bytes(encode_bundle(bundle)).checks if not c.ok}
    assert "witness signature" in failed["checkpoint"] and "does not verify" in failed["checkpoint"]


def _link_package(module: str, site: Path) -> None:
    spec = importlib.util.find_spec(module)
    origin = Path(spec.origin)
    source = origin.parent if origin.name == "__init__.py" else origin
    (site / source.name).symlink_to(source)


def test_it_verifies_in_a_virtualenv_with_only_cryptography(demo, tmp_path):
    export(tmp_path, demo["disputed_inference_id"], "--bundle", tmp_path / "b.json", "--keys", tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next(venv.glob("lib/python3*/site-packages"))
    for module in ("cryptography", "cffi", "_cffi_backend", "pycparser"):  # cryptography and its dependencies
        _link_package(module, site)
    src = tmp_path / "src" / "compliance"
    src.mkdir(parents=True)
    for name in VERIFIER_FILES:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "compliance" / name, src / name)
    python = venv / "bin" / "python"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for absent in ("django", "numpy", "rfc8785"):
        probe = subprocess.run([python, "-c", f"import {absent}"], cwd=src.parent, env=env, capture_output=True)
        assert probe.returncode != 0, f"{absent} is importable in the verifier's virtualenv"

    result = run_verifier(tmp_path / "b.json", "--key", tmp_path / "ledger.vkey", "--key", tmp_path / "build.pub",
                          python=python, cwd=src.parent, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "VERIFIED" in result.stdout
    edited = bytearray((tmp_path / "b.json").read_bytes())
    edited[len(edited) // 2] ^= 0x01
    (tmp_path / "edited.json").write_bytes(bytes(edited))
    result = run_verifier(tmp_path / "edited.json", "--json", python=python, cwd=src.parent, env=env)
    assert result.returncode == 1 and json.loads(result.stdout)["ok"] is False


def pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(str(path)).pages)


def test_it_renders_the_pdf_report(demo, tmp_path):
    iid = demo["disputed_inference_id"]
    export(tmp_path, iid, "--pdf", tmp_path / "r.pdf", "--bundle", tmp_path / "b.json")
    prediction = Prediction.objects.select_related("deployment__engine__build").get(inference_id=iid)
    build = prediction.deployment.engine.build
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(tmp_path / "r.pdf"), str(tmp_path / "page")], check=True,
                   timeout=120)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 8 and all(p.stat().st_size > 3000 for p in pages)
    text = pdf_text(tmp_path / "r.pdf")
    compact = "".join(text.split())
    assert prediction.engine_sha256 in compact
    assert build.commit in compact and build.submitter in text
    assert iid in compact
    for heading in ("Chain of provenance", "Build context", "Engine manifest", "Deployment timeline",
                    "Activity and alerts", "Ledger checkpoint", "Regulatory requirements", "Art. 12",
                    "Art. 19", "Art. 22", "SR 11-7", "Change control"):
        assert heading in text, heading
    assert f"Page 2 of {len(pages)}" in text
    assert "engine.load_refused" in text  # the demo's tampered-engine alert falls in the period
    assert hashlib.sha256((tmp_path / "b.json").read_bytes()).hexdigest() in compact


def _credit_prediction(x) -> str:
    _, meta = AuditedService.open("credit-scoring").predict({"X": x})
    return meta["inference_id"]


def test_it_discloses_an_input_that_opens_the_commitment(demo, tmp_path):
    from tests.conftest import make_user

    make_user("dora", "discloser")
    x, _ = samples.credit_training_data(n=3, seed=5)
    iid = _credit_prediction(x[:1])
    np.savez(tmp_path / "mine.npz", X=x[:1])
    data = export(tmp_path, iid, "--bundle", tmp_path / "b.json", "--disclose-input", tmp_path / "mine.npz",
                  "--user", "dora")
    assert data["disclosed_input"] is True
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o600
    bundle = json.loads((tmp_path / "b.json").read_bytes())
    assert bundle["disclosed_input"]["tensors"][0] | {"data": ""} == {"name": "X", "dtype": "<f4", "shape": [1, 6],
                                                                     "data": ""}
    result = verify_bytes((tmp_path / "b.json").read_bytes())
    assert result.ok and any(c.name == "input" and c.ok for c in result.checks)

    bundle["disclosed_input"]["tensors"][0]["data"] = base64.b64encode(x[1:2].tobytes()).decode()
    failed = {c.name: c.detail for c in verify_bytes(encode_bundle(bundle)).checks if not c.ok}
    assert "do not match" in failed["input"] and "signature does not verify" in failed["signature"]

    exports_before = LedgerEntry.objects.filter(kind="report.exported").count()
    np.savez(tmp_path / "other.npz", X=x[1:2])
    with pytest.raises(CommandError, match="does not match the prediction's input commitment"):
        export(tmp_path, iid, "--bundle", tmp_path / "c.json", "--disclose-input", tmp_path / "other.npz",
               "--user", "dora")
    PredictionSalt.objects.filter(inference_id=iid).delete()
    with pytest.raises(CommandError, match="salt of this prediction was erased"):
        export(tmp_path, iid, "--bundle", tmp_path / "c.json", "--disclose-input", tmp_path / "mine.npz",
               "--user", "dora")
    with pytest.raises(CommandError, match="needs --user USERNAME"):
        export(tmp_path, iid, "--bundle", tmp_path / "c.json", "--disclose-input", tmp_path / "mine.npz")
    assert LedgerEntry.objects.filter(kind="report.exported").count() == exports_before
    assert not (tmp_path / "c.json").exists()
    # every attempt is in the ledger, the failed ones too
    attempts = [ledger.payload_of(e) for e in LedgerEntry.objects.filter(kind="disclosure.attempted",
                                                                        subject=f"prediction:{iid}")]
    assert [a["outcome"] for a in attempts] == ["matched", "no_match", "salt_erased"]
    assert {a["user"] for a in attempts} == {"dora"}


def test_it_exports_a_service_over_a_time_window(demo, tmp_path):
    # a window over the later half of the demo's predictions, so that some lie outside it
    times = list(Prediction.objects.filter(deployment__service="credit-scoring").order_by("timestamp")
                 .values_list("timestamp", flat=True))
    since, until = times[len(times) // 2], timezone.now() + timedelta(minutes=1)
    expected = Prediction.objects.filter(deployment__service="credit-scoring", timestamp__gte=since,
                                         timestamp__lt=until).count()
    assert expected > 10
    data = export(tmp_path, "--service", "credit-scoring", "--since", since.isoformat(), "--until", until.isoformat(),
                  "--bundle", tmp_path / "s.json", "--pdf", tmp_path / "s.pdf", "--keys", tmp_path)
    assert data["predictions"] == expected and data["scope"]["kind"] == "service"
    bundle = json.loads((tmp_path / "s.json").read_bytes())
    assert len(bundle["predictions"]) == expected and len(bundle["deployments"]) == 1
    result = verify_bytes((tmp_path / "s.json").read_bytes(), pins(tmp_path))
    assert result.ok, [c for c in result.checks if not c.ok]
    assert any(c.name == "predictions" and f"{expected} predictions" in c.detail for c in result.checks)
    assert "Service provenance report" in pdf_text(tmp_path / "s.pdf")

    # a record slipped in from outside the window is caught
    outside = Prediction.objects.filter(deployment__service="credit-scoring", timestamp__lt=since).first()
    other = export(tmp_path, str(outside.inference_id), "--bundle", tmp_path / "o.json")
    assert other["predictions"] == 1
    bundle["predictions"].append(json.loads((tmp_path / "o.json").read_bytes())["predictions"][0])
    failed = {c.name: c.detail for c in verify_bytes(encode_bundle(bundle)).checks if not c.ok}
    assert "outside the window" in failed.get("scope", ""), failed



def test_it_shows_progress_over_a_service_window_on_a_terminal_only(demo, tmp_path, monkeypatch):
    from compliance.investigation import evidence

    since, until = timezone.now() - timedelta(days=400), timezone.now() + timedelta(minutes=1)
    expected = Prediction.objects.filter(deployment__service="credit-scoring", timestamp__gte=since,
                                         timestamp__lt=until).count()
    monkeypatch.setattr(evidence, "BATCH", 7)  # several batches, the proofs' node cache shared between them
    seen = []
    result = do_export_report(Scope.for_service("credit-scoring", since, until), acting_user="alice", pdf=False,
                              progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, expected) and seen[-1] == (expected, expected)
    assert [d for d, _ in seen] == list(range(0, expected, 7)) + [expected]
    checks = verify_bytes(result.files["bundle"]).checks
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]

    window = ["--service", "credit-scoring", "--since", since.isoformat(), "--until", until.isoformat()]
    out, err = io.StringIO(), Terminal()
    call_command("export_report", *window, "--bundle", tmp_path / "s.json", "--json", stdout=out, stderr=err)
    assert json.loads(out.getvalue())["predictions"] == expected  # stdout stays one JSON object
    shown = err.getvalue()
    assert "proving predictions" in shown and counted(expected, expected) in shown and "100%" in shown, shown
    out, err = io.StringIO(), io.StringIO()
    call_command("export_report", *window, "--bundle", tmp_path / "s.json", "--json", stdout=out, stderr=err)
    assert json.loads(out.getvalue())["predictions"] == expected and err.getvalue() == ""
    out, err = io.StringIO(), Terminal()  # one prediction: no bar
    call_command("export_report", demo["disputed_inference_id"], "--bundle", tmp_path / "p.json", "--json",
                 stdout=out, stderr=err)
    assert json.loads(out.getvalue())["predictions"] == 1 and err.getvalue() == ""


def test_it_exports_a_case_with_its_events(demo, tmp_path):
    from compliance.investigation.cases import do_add_case_note, do_decide_case, do_open_case
    from lineage.models import Prediction

    iid = demo["disputed_inference_id"]
    case = do_open_case(Prediction.objects.get(inference_id=iid), kind="gdpr_art22", legal_hold=True,
                        summary="Applicant disputes the refusal.", acting_user="alice")
    do_add_case_note(case, text="Income verified against payslips.", acting_user="alice")
    do_decide_case(case, outcome="upheld", reason="Debt ratio above policy.", acting_user="charlie")
    result = do_export_report(Scope.for_case(case.pk), acting_user="alice", pdf=True, bundle=True)
    bundle = json.loads(result.files["bundle"])
    assert bundle["scope"] == {"kind": "case", "case_id": case.pk, "inference_id": iid}
    assert [json.loads(e["entry"]["body"])["kind"] for e in bundle["case_events"]] == [
        "case.opened", "case.hold_placed", "case.noted", "case.decided"]
    assert bundle["case_events"][0]["record"]["kind"] == "gdpr_art22"
    checks = verify_bytes(result.files["bundle"]).checks
    assert all(c.ok for c in checks) and any(c.name == "case" for c in checks)
    (tmp_path / "c.pdf").write_bytes(result.files["pdf"])
    text = pdf_text(tmp_path / "c.pdf")
    text = " ".join(text.split())  # table cells wrap
    for expected in (f"Case #{case.pk}", "Applicant disputes the refusal.", "legal hold",
                     "Income verified against payslips.", "Debt ratio above policy."):
        assert expected in text, expected
    assert LedgerEntry.objects.get(index=result.ledger_index).subject == f"case:{case.pk}"


def test_it_refuses_bad_export_requests_and_records_nothing(demo, tmp_path):
    iid = demo["disputed_inference_id"]
    before = LedgerEntry.objects.count()
    bad = [
        (["not-a-uuid", "--pdf", tmp_path / "x.pdf"], "malformed inference id"),
        (["0190f2c4-0000-7000-8000-000000000000", "--pdf", tmp_path / "x.pdf"], "no prediction"),
        ([iid], "give --pdf FILE, --bundle FILE or both"),
        ([iid, "--service", "credit-scoring", "--pdf", tmp_path / "x.pdf"], "exactly one of"),
        (["--case", "999999", "--pdf", tmp_path / "x.pdf"], "no case 999999"),
        (["--service", "credit-scoring", "--since", "2026-01-02T00:00:00Z", "--until", "2026-01-01T00:00:00Z",
          "--pdf", tmp_path / "x.pdf"], "before"),
        (["--service", "credit-scoring", "--since", "2026-01-01T00:00", "--until", "2026-01-02T00:00Z",
          "--pdf", tmp_path / "x.pdf"], "time zone"),
        (["--service", "nope", "--since", "2026-01-01T00:00Z", "--until", "2026-01-02T00:00Z",
          "--pdf", tmp_path / "x.pdf"], "no deployment"),
        ([iid, "--pdf", tmp_path / "missing" / "x.pdf"], "does not exist"),
        ([iid, "--pdf", tmp_path / "x.pdf", "--disclose-input", tmp_path / "none.npz"], "--bundle"),
        ([iid, "--bundle", tmp_path / "x.json", "--disclose-input", ROOT / "README.md"], "cannot read"),
    ]
    for args, message in bad:
        with pytest.raises(CommandError, match=message):
            export(tmp_path, *args)
    assert LedgerEntry.objects.count() == before
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ dashboard


def test_it_exports_from_the_dashboard(demo, client, alice, tmp_path):
    from django.contrib.auth.models import Group

    alice.groups.add(Group.objects.get(name="discloser"))
    iid = demo["disputed_inference_id"]
    client.force_login(alice)
    trace = client.get(f"/trace/{iid}/")
    assert f"/reports/prediction/{iid}/" in trace.content.decode()
    page = client.get(f"/reports/prediction/{iid}/")
    assert page.status_code == 200 and b"csrfmiddlewaretoken" in page.content

    pdf = client.post(f"/reports/prediction/{iid}/", {"format": "pdf"})
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    entry = LedgerEntry.objects.get(index=int(pdf["X-TraceLedger-Ledger-Entry"]))
    assert entry.kind == "report.exported" and json.loads(entry.body)["actor"] == "alice"
    assert ledger.payload_of(entry)["files"]["pdf"]["sha256"] == hashlib.sha256(pdf.content).hexdigest()

    bundle = client.post(f"/reports/prediction/{iid}/", {"format": "bundle"})
    assert bundle.status_code == 200 and "attachment" in bundle["Content-Disposition"]
    assert verify_bytes(bundle.content).ok

    x, _ = samples.credit_training_data(n=3, seed=5)
    mine = _credit_prediction(x[:1])
    buf = io.BytesIO()
    np.savez(buf, X=x[:1])
    buf.seek(0)
    buf.name = "mine.npz"
    disclosed = client.post(f"/reports/prediction/{mine}/", {"format": "bundle", "disclosed_input": buf})
    assert disclosed.status_code == 200 and json.loads(disclosed.content)["disclosed_input"]["inference_id"] == mine
    buf.seek(0)
    wrong = client.post(f"/reports/prediction/{iid}/", {"format": "bundle", "disclosed_input": buf})
    assert wrong.status_code == 400 and b"does not match" in wrong.content

    until = timezone.now() + timedelta(minutes=1)
    service = client.post("/reports/service/", {"format": "bundle", "service": "credit-scoring",
                                                "since": (until - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M"),
                                                "until": until.strftime("%Y-%m-%d %H:%M")})
    assert service.status_code == 200 and verify_bytes(service.content).ok
    assert client.post("/reports/service/", {"format": "pdf", "service": "credit-scoring",
                                             "since": "2026-01-02 00:00", "until": "2026-01-01 00:00"}).status_code == 400


def test_it_checks_roles_and_input_on_the_export_pages(demo, client, dave):
    iid = demo["disputed_inference_id"]
    before = LedgerEntry.objects.count()
    assert client.get(f"/reports/prediction/{iid}/").status_code == 302  # to the login page
    client.force_login(dave)
    assert client.post(f"/reports/prediction/{iid}/", {"format": "pdf"}).status_code == 403
    assert client.get("/reports/service/").status_code == 403
    client.logout()
    from tests.conftest import make_user

    client.force_login(make_user("erin", "engineer"))
    assert client.get("/reports/prediction/not-an-id/").status_code == 404
    assert client.get("/reports/prediction/0190f2c4-0000-7000-8000-000000000000/").status_code == 404
    assert client.get("/reports/case/1/").status_code == 404  # no cases on this installation
    assert client.post(f"/reports/prediction/{iid}/", {"format": "zip"}).status_code == 400
    assert client.put(f"/reports/prediction/{iid}/").status_code == 405
    assert LedgerEntry.objects.count() == before


def test_it_bundles_the_cosignature_our_witness_stored(demo, tmp_path, settings):
    from compliance.ledger.witness import Witness

    settings.TRACELEDGER_WITNESS_DIR = tmp_path / "witness"
    export(tmp_path, demo["disputed_inference_id"], "--bundle", tmp_path / "a.json")  # a checkpoint covering it exists now
    witness = Witness()
    cosigned = witness.cosign_latest()
    export(tmp_path, demo["disputed_inference_id"], "--bundle", tmp_path / "b.json", "--keys", tmp_path)
    raw = (tmp_path / "b.json").read_bytes()
    bundle = json.loads(raw)
    assert f"\n{cosigned.size}\n" in bundle["checkpoint"]["note"]
    assert cosigned.line in bundle["checkpoint"]["note"]
    check = {c.name: c for c in verify_bytes(raw).checks}["checkpoint"]
    assert check.ok and f"cosigned by {witness.name}" in check.detail
