"""Finding 1 of issue 21, reproduced as the reviewer did it: a real bundle's disputed
prediction gets a zeroed output digest, a Merkle tree of the same size is rebuilt
around the edited entry, and a new checkpoint is signed with the build key (or the
witness key) under the name the verifier expects.  Pinned with the key files
`export_report --keys DIR` writes, as the README tells auditors, every such bundle must
fail: a key counts only for its purpose (compliance.ledger.purposes)."""
from __future__ import annotations

import base64
import copy
import hashlib
import json
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

from compliance.ledger import checkpoints, dsse, keylog, keys, merkle, notes
from compliance.ledger.canonical import canonical_json
from compliance.ledger.keys import public_raw
from compliance.ledger.manifests import verify_manifest
from compliance.ledger.offline import completeness
from compliance.ledger.offline.pinned import load_key_file
from compliance.ledger.witness import Witness
from compliance.verify_bundle import encode_bundle, verify_bytes
from tests.compliance.test_reports import demo, export, run_verifier  # noqa: F401  (demo is a fixture)

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def exported(demo, tmp_path):
    """A real bundle of the disputed prediction, cosigned by our witness, and the key
    files an auditor pins."""
    checkpoints.make_checkpoint()
    Witness(directory=tmp_path / "witness").cosign_latest()
    export(tmp_path, demo["disputed_inference_id"], "--bundle", tmp_path / "b.json", "--keys", tmp_path)
    assert {"ledger.vkey", "build.pub", "witness.vkey"} <= {p.name for p in tmp_path.iterdir()}
    return json.loads((tmp_path / "b.json").read_bytes()), tmp_path


def pins(keys_dir) -> list:
    return [k for name in ("ledger.vkey", "build.pub", "witness.vkey") for k in load_key_file(keys_dir / name)]


def attested(b: dict) -> list[dict]:
    return [*b["predictions"], *b["alerts"], *b["key_events"], *b["case_events"],
            *[v for c in b["deployments"] for v in c.values() if isinstance(v, dict)]]


def rebuild(b: dict, private_key: Ed25519PrivateKey, name: str, *, ledger_vkey: bool = True) -> bytes:
    """Re-make every entry from its record, rebuild a tree of the same size around them,
    sign its checkpoint with `private_key` as `name`, and list that key as the bundle's
    ledger key."""
    origin = notes.parse_checkpoint(notes.parse_note(b["checkpoint"]["note"])[0]).origin
    size = notes.parse_checkpoint(notes.parse_note(b["checkpoint"]["note"])[0]).size
    leaves = [hashlib.sha256(os.urandom(8)).digest() for _ in range(size)]
    for ar in attested(b):
        body = json.loads(ar["entry"]["body"])
        body["payload"] = ar["record"]
        ar["entry"]["body"] = canonical_json(body).decode()
        leaves[ar["entry"]["index"]] = merkle.leaf_hash(ar["entry"]["body"].encode())
    nodes = merkle.DictNodeReader()
    nodes.store(merkle.nodes_for_batch(0, leaves, nodes))
    for ar in attested(b):
        ar["entry"]["proof"] = [base64.b64encode(h).decode()
                                for h in merkle.inclusion_proof(ar["entry"]["index"], size, nodes)]
    registry = keylog.registry_line(*keylog.registry_digest(merkle.leaf_hash(e["entry"]["body"].encode())
                                                            for e in b["key_events"]))
    b["checkpoint"]["note"] = notes.sign_note(notes.format_checkpoint(origin, size, merkle.root(size, nodes), [registry]),
                                              name, private_key)
    raw = public_raw(private_key.public_key())
    b["keys"]["ledger"] = [notes.format_vkey(name, raw)]
    b["keys"]["witness"] = []
    return encode_bundle(completeness.sign(b, hashlib.sha256(raw).hexdigest(), private_key.sign))


def zeroed(bundle: dict) -> dict:
    b = copy.deepcopy(bundle)
    b["predictions"][0]["record"]["output_digest"] = "0" * 64
    return b


def failed(result) -> dict:
    """Every problem of every failed link, by link."""
    return {c.name: " | ".join(c.problems or [c.detail]) for c in result.checks if not c.ok}


def test_a_checkpoint_signed_with_the_build_key_does_not_verify(exported):
    bundle, keys_dir = exported
    origin = settings.TRACELEDGER_LOG_ORIGIN
    # the control: the same forgery signed with the ledger key verifies, so the edit is
    # well formed and only the key can make it fail
    control = rebuild(zeroed(bundle), keys.get_signer("ledger").private_key, origin)
    assert verify_bytes(control, pins(keys_dir)).ok

    forged = rebuild(zeroed(bundle), keys.get_signer("build").private_key, origin)
    (keys_dir / "forged.json").write_bytes(forged)
    result = verify_bytes(forged, pins(keys_dir))
    assert not result.ok
    assert "not pinned with --key as a ledger key" in failed(result)["checkpoint"]
    assert "a key has one purpose" in failed(result)["checkpoint"]  # it is the bundle's build key too
    cli = run_verifier(keys_dir / "forged.json", "--key", keys_dir / "ledger.vkey", "--key", keys_dir / "build.pub",
                       "--key", keys_dir / "witness.vkey")
    assert cli.returncode == 1 and "FAILED" in cli.stdout and "VERIFIED" not in cli.stdout, cli.stdout
    assert "PASS  checkpoint" not in cli.stdout


def test_a_checkpoint_signed_with_the_witness_key_does_not_verify(exported):
    bundle, keys_dir = exported
    witness = keys.get_signer("witness").private_key
    # under the witness's own note name, as the reviewer did, and under the origin
    for name in (settings.TRACELEDGER_WITNESS_NAME, settings.TRACELEDGER_LOG_ORIGIN):
        forged = rebuild(zeroed(bundle), witness, name)
        result = verify_bytes(forged, pins(keys_dir))
        assert not result.ok and "checkpoint" in failed(result), name
        cli_file = keys_dir / "forged-w.json"
        cli_file.write_bytes(forged)
        cli = run_verifier(cli_file, "--key", keys_dir / "ledger.vkey", "--key", keys_dir / "build.pub",
                           "--key", keys_dir / "witness.vkey")
        assert cli.returncode == 1 and "VERIFIED" not in cli.stdout, cli.stdout
    detail = failed(verify_bytes(rebuild(zeroed(bundle), witness, settings.TRACELEDGER_WITNESS_NAME),
                                 pins(keys_dir)))["checkpoint"]
    assert "must be signed under its origin's name" in detail


def test_an_engine_manifest_signed_with_the_ledger_or_witness_key_does_not_verify(exported):
    bundle, keys_dir = exported
    for purpose in ("ledger", "witness"):
        b = copy.deepcopy(bundle)
        signer = keys.get_signer(purpose)
        chain = b["deployments"][0]
        payload = base64.b64decode(json.loads(chain["engine_manifest"])["payload"])
        manifest = json.dumps(dsse.sign_envelope(payload, signer.key_id, signer.sign), sort_keys=True)
        sha = hashlib.sha256(manifest.encode()).hexdigest()
        chain["engine_manifest"] = manifest
        chain["build_succeeded"]["record"] |= {"manifest_sha256": sha, "signing_key_id": signer.key_id}
        chain["deployment"]["record"]["manifest_sha256"] = sha
        b["keys"]["build"] = [signer.public_b64]
        # re-signed by the real ledger key, so that only the manifest's signer is at issue
        forged = rebuild(b, keys.get_signer("ledger").private_key, settings.TRACELEDGER_LOG_ORIGIN)
        result = verify_bytes(forged, pins(keys_dir))
        assert not result.ok, purpose
        assert "not pinned with --key as a build key" in failed(result)["engine"], purpose
        # and inside the app: only a registered build key verifies a manifest
        assert verify_manifest(manifest, chain["deployment"]["record"]["engine_sha256"], signed_at=None)[0] \
            == "unknown_key"


def test_a_bundle_that_lists_one_key_for_two_purposes_fails(exported):
    bundle, keys_dir = exported
    b = copy.deepcopy(bundle)
    b["keys"]["build"] = sorted({*b["keys"]["build"], keys.get_signer("ledger").public_b64})
    result = verify_bytes(encode_bundle(b))
    assert not result.ok and "a key has one purpose" in failed(result)["checkpoint"]


def test_a_cosignature_dated_2_to_the_62_is_refused_without_a_traceback(exported):
    """Finding 4: the verifier, documented never to raise, ended in OSError."""
    bundle, keys_dir = exported
    b = copy.deepcopy(bundle)
    body, _ = notes.parse_note(b["checkpoint"]["note"])
    witness = keys.get_signer("witness").private_key
    name = settings.TRACELEDGER_WITNESS_NAME
    b["checkpoint"]["note"] = notes.add_cosignature(b["checkpoint"]["note"], name, witness, 2**62)
    (keys_dir / "future.json").write_bytes(encode_bundle(b))
    result = verify_bytes(encode_bundle(b), pins(keys_dir))
    assert not result.ok and "in the future" in failed(result)["checkpoint"]
    assert "600 s ahead" in failed(result)["checkpoint"]
    cli = run_verifier(keys_dir / "future.json", "--key", keys_dir / "ledger.vkey", "--key", keys_dir / "build.pub",
                       "--key", keys_dir / "witness.vkey")
    assert cli.returncode == 1 and "Traceback" not in cli.stderr and "FAILED" in cli.stdout, cli.stderr
    # a cosignature within the stated skew still counts
    import time

    b["checkpoint"]["note"] = notes.add_cosignature(bundle["checkpoint"]["note"], name, witness, int(time.time()) + 60)
    ledger_signer = keys.get_signer("ledger")  # a bundle is signed whole, its note included: re-sign it
    resigned = encode_bundle(completeness.sign(b, ledger_signer.key_id, ledger_signer.private_key.sign))
    assert verify_bytes(resigned, pins(keys_dir)).ok, failed(verify_bytes(resigned, pins(keys_dir)))


def test_the_witness_cosigns_only_a_checkpoint_signed_under_its_origin(settings, tmp_path):
    """A witness told to trust some other vkey (`witness --trust-vkey`) still cosigns only
    a checkpoint whose signature line is named after the log's origin."""
    from compliance.ledger import ledger
    from compliance.ledger.witness import WitnessRefused
    from compliance.models import Checkpoint

    settings.TRACELEDGER_CHECKPOINT_DIR = tmp_path / "checkpoints"
    witness = Witness(directory=tmp_path / "witness")
    ledger.append("trace.viewed", {"n": 1})
    honest = checkpoints.make_checkpoint()
    witness.cosign(honest)
    build = keys.get_signer("build")
    witness.trust(notes.format_vkey("builder.example/ci", build.public_raw))
    ledger.append("trace.viewed", {"n": 2})
    size = ledger.size()
    from compliance.ledger import tree

    body = notes.format_checkpoint(checkpoints.origin(), size, tree.root(size))
    forged = Checkpoint.objects.create(size=size, root_hash=tree.root(size).hex(), key_id=build.key_id,
                                       note=notes.sign_note(body, "builder.example/ci", build.private_key))
    with pytest.raises(WitnessRefused, match="must be signed under its origin's name"):
        witness.cosign(forged)
