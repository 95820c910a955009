"""Offline verifier for TraceLedger evidence bundles ("traceledger-evidence/v1").

    python -m compliance.verify_bundle BUNDLE [--key PUBKEY ...] [--json]

Needs only the standard library and `cryptography`, plus the three pure modules next
to this file (merkle, notes, dsse); no Django, no database, no network.  It checks
every signature (the checkpoint note under the ledger key, witness cosignatures, each
engine's DSSE envelope under the build key), every digest, every link of each chain
(prediction → deployment → engine → build → ONNX model → commit → submitter), the
inclusion proof of every ledger entry against the signed checkpoint, that each record
equals the payload of its ledger entry, and a disclosed input against the prediction's
salted commitment.  One verdict per link; exit status 0 only when everything holds.

The bundle is one JSON document whose bytes must be exactly `encode_bundle()` of its
content (sorted keys, no insignificant whitespace, ASCII with \\u escapes, one final
newline): no byte of a bundle can change without verification failing.  Its fields:

  format            "traceledger-evidence/v1"
  scope             {kind: prediction, inference_id} | {kind: case, case_id, inference_id}
                    | {kind: service, service, since, until}
  checkpoint        {note}: the C2SP signed checkpoint note, with witness cosignatures
  keys              {ledger: [vkey], build: [base64 raw Ed25519 key], witness: [vkey]}
  predictions       [R] (prediction.recorded)
  deployments       [{deployment R, engine_manifest (the DSSE envelope text as pinned),
                      build R, build_started R, build_succeeded R, model R}]
  alerts, case_events, key_registrations    [R]
  disclosed_input   null | {inference_id, salt (hex), tensors: [{name, dtype, shape, data}]}

where R = {record: the entry's payload, entry: {index, body: the entry's exact canonical
JSON text, proof: [base64 RFC 9162 inclusion proof hashes at the checkpoint's size]}}.

--key PUBKEY pins a trusted key (repeat it for the ledger, build and witness keys).
A PUBKEY file holds one of:
  * a C2SP verifier key line `name+hex8+base64(type || key)` (as published beside our
    checkpoints; the name must then match too), one or more lines;
  * a PEM "PUBLIC KEY" (SubjectPublicKeyInfo) Ed25519 key;
  * the raw 32-byte Ed25519 key in base64 (or 64 hex digits), one or more lines.
With --key, the checkpoint and every engine manifest must be signed by pinned keys.
Without it the keys carried in the bundle are used, and the verifier says so: that
proves integrity, not origin.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import re
import struct
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from compliance.ledger import dsse, merkle, notes

FORMAT = "traceledger-evidence/v1"
TOP_KEYS = {"format", "scope", "checkpoint", "keys", "key_registrations", "predictions", "deployments",
            "alerts", "case_events", "disclosed_input"}
CHAIN_KEYS = {"deployment", "engine_manifest", "build", "build_started", "build_succeeded", "model"}
BODY_KEYS = {"index", "kind", "subject", "actor", "time", "payload"}
_HEX64 = re.compile(r"[0-9a-f]{64}")
_DTYPE = re.compile(r"<([biufc])([0-9]{1,2})")


def encode_bundle(bundle: dict) -> bytes:
    """The one byte serialization of a bundle (the exporter writes exactly this)."""
    return json.dumps(bundle, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii") + b"\n"


def _same(a, b) -> bool:
    """JSON equality that tells 1 from true and 1 from "1"."""
    return encode_bundle({"v": a}) == encode_bundle({"v": b})


class Malformed(ValueError):
    """The bundle is not a well-formed, canonical traceledger-evidence/v1 document."""


# ------------------------------------------------------------------ parsing


def _reject_duplicates(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise Malformed(f"duplicate key {k!r}")
        obj[k] = v
    return obj


def _no_floats(text):
    raise Malformed(f"non-integer number {text!r}: bundles carry no floats")


def parse_bundle(data: bytes) -> dict:
    try:
        bundle = json.loads(data.decode("ascii"), object_pairs_hook=_reject_duplicates,
                            parse_float=_no_floats, parse_constant=_no_floats)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Malformed(f"not a JSON bundle: {exc}") from None
    if not isinstance(bundle, dict):
        raise Malformed("a bundle is a JSON object")
    if encode_bundle(bundle) != data:
        raise Malformed("bytes are not the canonical encoding of the bundle: it was edited")
    _keys(bundle, TOP_KEYS, "bundle")
    if bundle["format"] != FORMAT:
        raise Malformed(f"format is {bundle['format']!r}, expected {FORMAT!r}")
    return bundle


def _keys(obj, keys: set[str], where: str) -> dict:
    if not isinstance(obj, dict):
        raise Malformed(f"{where} must be an object")
    if set(obj) != keys:
        odd = sorted(set(obj) ^ keys)
        raise Malformed(f"{where} has missing or unexpected fields: {', '.join(odd)}")
    return obj


def _str(value, where: str) -> str:
    if not isinstance(value, str):
        raise Malformed(f"{where} must be a string")
    return value


def _int(value, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Malformed(f"{where} must be a non-negative integer")
    return value


def _list(value, where: str) -> list:
    if not isinstance(value, list):
        raise Malformed(f"{where} must be a list")
    return value


def _b64(value, where: str, size: int | None = None) -> bytes:
    """Strict canonical base64: a changed padding bit is a changed bundle."""
    text = _str(value, where)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Malformed(f"{where} is not base64") from None
    if base64.b64encode(raw).decode() != text or (size is not None and len(raw) != size):
        raise Malformed(f"{where} is not canonical base64{f' of {size} bytes' if size else ''}")
    return raw


def _time(value, where: str) -> datetime:
    try:
        when = datetime.fromisoformat(_str(value, where))
    except ValueError:
        raise Malformed(f"{where} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise Malformed(f"{where} has no time zone")
    return when


# --------------------------------------------------------------------- keys


@dataclass(frozen=True)
class PinnedKey:
    raw: bytes
    name: str | None = None
    source: str = ""

    def matches(self, raw: bytes, name: str | None = None) -> bool:
        return hmac.compare_digest(self.raw, raw) and (self.name is None or name is None or self.name == name)


def _raw_from_public(key) -> bytes:
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def load_key_file(path: str) -> list[PinnedKey]:
    """Keys from a PUBKEY file: vkey lines, a PEM public key, or raw base64/hex keys."""
    with open(path, "rb") as f:
        data = f.read()
    text = data.decode("utf-8", "replace")
    if "-----BEGIN PUBLIC KEY-----" in text:
        try:
            return [PinnedKey(_raw_from_public(load_pem_public_key(data)), None, path)]
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if re.fullmatch(r"[^+\s]+\+[0-9a-fA-F]{8}\+\S+", line):
            try:
                vk = notes.parse_vkey(line)
            except notes.NoteError as exc:
                raise ValueError(f"{path}: {exc}") from None
            found.append(PinnedKey(vk.public_key, vk.name, path))
        elif re.fullmatch(r"[0-9a-fA-F]{64}", line):
            found.append(PinnedKey(bytes.fromhex(line), None, path))
        else:
            try:
                raw = base64.b64decode(line, validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 32:
                raise ValueError(f"{path}: not a vkey, PEM public key or raw Ed25519 key")
            found.append(PinnedKey(raw, None, path))
    if not found:
        raise ValueError(f"{path}: no key in the file")
    return found


# ------------------------------------------------------------------ results


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    problems: list[str] = field(default_factory=list)
    label: str = ""


@dataclass
class Result:
    checks: list[Check]
    pinned: bool
    scope: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "keys_pinned": self.pinned, "scope": self.scope,
                "checks": [{"name": c.name, "label": c.label, "ok": c.ok, "detail": c.detail, "problems": c.problems}
                           for c in self.checks]}


class _Link:
    """Collects the problems of one link; becomes one Check."""

    def __init__(self, name: str, label: str = ""):
        self.name = name
        self.label = label
        self.problems: list[str] = []

    def need(self, condition: bool, problem: str) -> bool:
        if not condition:
            self.problems.append(problem)
        return bool(condition)

    def check(self, ok_detail: str) -> Check:
        prefix = f"{self.label}: " if self.label else ""
        if self.problems:
            return Check(self.name, False, prefix + self.problems[0], self.problems, self.label)
        return Check(self.name, True, prefix + ok_detail, [], self.label)


# ---------------------------------------------------------------- verifying


@dataclass
class Entry:
    index: int
    kind: str
    subject: str
    actor: str
    time: datetime
    payload: dict


class Verifier:
    def __init__(self, bundle: dict, pinned: list[PinnedKey]):
        self.bundle = bundle
        self.pinned = pinned
        self.checks: list[Check] = []
        self.size = 0
        self.root = b""
        self.entries_ok = 0
        self.used_keys: set[tuple[str, bytes]] = set()

    def is_pinned(self, raw: bytes, name: str | None = None) -> bool:
        return any(p.matches(raw, name) for p in self.pinned)

    # ---- checkpoint and keys

    def checkpoint(self) -> bool:
        """Check the checkpoint's signatures; False only when the note cannot be read
        (the links are still checked against a readable checkpoint that fails)."""
        link = _Link("checkpoint")
        keys = _keys(self.bundle["keys"], {"ledger", "build", "witness"}, "keys")
        ledger = [self._vkey(v, "keys.ledger") for v in _list(keys["ledger"], "keys.ledger")]
        witnesses = [self._vkey(v, "keys.witness") for v in _list(keys["witness"], "keys.witness")]
        self.build_keys = {hashlib.sha256(raw).hexdigest(): raw for raw in
                           (_b64(k, "keys.build", 32) for k in _list(keys["build"], "keys.build"))}
        if len(self.build_keys) != len(keys["build"]):
            raise Malformed("keys.build lists a key twice")
        note = _str(_keys(self.bundle["checkpoint"], {"note"}, "checkpoint")["note"], "checkpoint.note")
        try:
            body, sigs = notes.parse_note(note)
            cp = notes.parse_checkpoint(body)
        except notes.NoteError as exc:
            self.checks.append(Check("checkpoint", False, f"malformed checkpoint note: {exc}"))
            return False
        self.size, self.root = cp.size, cp.root_hash
        ledger_sigs, witness_sigs = 0, []
        for sig in sigs:
            who = f"{sig.name}+{sig.key_id.hex()}"
            lk = next((v for v in ledger if (v.name, v.key_id) == (sig.name, sig.key_id)), None)
            wk = next((v for v in witnesses if (v.name, v.key_id) == (sig.name, sig.key_id)), None)
            if lk is not None:
                try:
                    notes.verify_note(note, [lk])
                except notes.NoteError as exc:
                    link.need(False, f"ledger signature {who} does not verify: {exc}")
                    continue
                self.used_keys.add(("ledger", lk.key_id))
                ledger_sigs += 1
                if self.pinned:
                    link.need(self.is_pinned(lk.public_key, lk.name),
                              f"checkpoint signed by ledger key {who}, which is not pinned with --key")
            elif wk is not None:
                try:
                    if wk.sig_type == notes.SIG_COSIGNATURE_V1:
                        ts = notes.verify_cosignature(note, wk.name, wk.public_key)
                    else:
                        notes.verify_note(note, [wk])
                        ts = None
                except notes.NoteError as exc:
                    link.need(False, f"witness signature {who} does not verify: {exc}")
                    continue
                self.used_keys.add(("witness", wk.key_id))
                pinned = "pinned" if self.is_pinned(wk.public_key, wk.name) else "key from the bundle"
                when = f" at {datetime.fromtimestamp(ts, timezone.utc).isoformat()}" if ts is not None else ""
                witness_sigs.append(f"{wk.name}{when} ({pinned})")
            else:
                link.need(False, f"signature line {who} has no key in the bundle")
        link.need(ledger_sigs > 0, "checkpoint carries no valid signature by a ledger key")
        for v in ledger:
            link.need(("ledger", v.key_id) in self.used_keys, f"ledger key {v.name}+{v.key_id.hex()} signs nothing")
        for v in witnesses:
            link.need(("witness", v.key_id) in self.used_keys, f"witness key {v.name}+{v.key_id.hex()} signs nothing")
        cosigned = f"; cosigned by {', '.join(witness_sigs)}" if witness_sigs else "; no witness cosignature"
        self.checks.append(link.check(
            f"{cp.origin} size {cp.size} root {base64.b64encode(cp.root_hash).decode()} signed by the ledger key{cosigned}"))
        return True

    def _vkey(self, value, where: str) -> notes.VerifierKey:
        try:
            vk = notes.parse_vkey(_str(value, where))
        except notes.NoteError as exc:
            raise Malformed(f"{where}: {exc}") from None
        if notes.format_vkey(vk.name, vk.public_key, vk.sig_type) != value:
            raise Malformed(f"{where}: vkey is not in canonical form")
        return vk

    # ---- ledger entries

    def entry(self, ar, where: str, kind: str, link: _Link, subject: str | None = None) -> tuple[dict, Entry | None]:
        """Check one attested record: body included in the checkpoint, record equal to
        the entry's payload, expected kind and subject.  Returns (record, entry)."""
        _keys(ar, {"record", "entry"}, where)
        ent = _keys(ar["entry"], {"index", "body", "proof"}, f"{where}.entry")
        index = _int(ent["index"], f"{where}.entry.index")
        body_text = _str(ent["body"], f"{where}.entry.body")
        proof = [_b64(p, f"{where}.entry.proof", 32) for p in _list(ent["proof"], f"{where}.entry.proof")]
        record = ar["record"]
        if not isinstance(record, dict):
            raise Malformed(f"{where}.record must be an object")
        try:
            body = json.loads(body_text, object_pairs_hook=_reject_duplicates)
            _keys(body, BODY_KEYS, f"{where} entry body")
            entry = Entry(_int(body["index"], "index"), _str(body["kind"], "kind"), _str(body["subject"], "subject"),
                          _str(body["actor"], "actor"), _time(body["time"], "time"), body["payload"])
        except (ValueError, Malformed) as exc:
            link.need(False, f"{where}: ledger entry #{index} body is malformed ({exc})")
            return record, None
        leaf = merkle.leaf_hash(body_text.encode("utf-8"))
        ok = link.need(entry.index == index, f"{where}: entry says index {entry.index}, bundle says {index}")
        ok &= link.need(index < self.size, f"{where}: ledger entry #{index} is beyond checkpoint size {self.size}")
        ok &= link.need(merkle.verify_inclusion(leaf, index, self.size, proof, self.root),
                        f"{where}: ledger entry #{index} is not included in the checkpoint (inclusion proof fails)")
        ok &= link.need(_same(record, entry.payload), f"{where}: record differs from the payload of ledger entry #{index}")
        kind_ok = entry.kind.startswith(kind) if kind.endswith(".") else entry.kind == kind
        ok &= link.need(kind_ok, f"{where}: ledger entry #{index} is {entry.kind}, expected {kind}")
        if subject is not None:
            ok &= link.need(entry.subject == subject,
                            f"{where}: ledger entry #{index} is about {entry.subject!r}, expected {subject!r}")
        if ok:
            self.entries_ok += 1
        return record, entry

    # ---- chains

    def chain(self, item, where: str) -> dict:
        """Verify one deployment chain; returns facts the predictions link to."""
        _keys(item, CHAIN_KEYS, where)
        dep_link = _Link("deployment", where)
        dep, dep_e = self.entry(item["deployment"], f"{where}.deployment", "deployment.created", dep_link)
        dep_id = dep.get("deployment_id")
        if dep_e:
            dep_link.need(dep_e.subject == f"deployment:{dep_id}", f"deployment entry is about {dep_e.subject!r}")
            dep_link.label = f"{dep.get('service')}/{dep.get('environment')} #{dep_id}"

        # engine: the signed manifest
        eng_link = _Link("engine")
        manifest = _str(item["engine_manifest"], f"{where}.engine_manifest")
        manifest_sha = hashlib.sha256(manifest.encode("utf-8")).hexdigest()
        statement, signer = {}, ""
        try:
            envelope = json.loads(manifest)
            payload, signer = dsse.verify_envelope(envelope, lambda kid: self._build_key(kid))
            statement = json.loads(payload)
            subject_sha = dsse.statement_subject_digest(payload)
        except dsse.EnvelopeError as exc:
            eng_link.need(False, f"engine manifest: {exc.verdict}: {exc}")
            subject_sha = ""
        except ValueError as exc:
            eng_link.need(False, f"engine manifest is not JSON: {exc}")
            subject_sha = ""
        if signer:
            self.used_keys.add(("build", bytes.fromhex(signer)))
            if self.pinned:
                eng_link.need(self.is_pinned(self.build_keys[signer]),
                              f"engine manifest signed by build key {signer[:16]}, which is not pinned with --key")
        bld_link = _Link("build")
        build, build_e = self.entry(item["build"], f"{where}.build", "build.requested", bld_link)
        started, started_e = self.entry(item["build_started"], f"{where}.build_started", "build.started", bld_link)
        # build.succeeded is the engine's record: its problems are the engine's
        succ, succ_e = self.entry(item["build_succeeded"], f"{where}.build_succeeded", "build.succeeded", eng_link)
        build_id = build.get("build_id")
        eng_link.label = f"engine #{succ.get('engine_id')}"
        eng_link.need(bool(subject_sha) and subject_sha == dep.get("engine_sha256") == succ.get("engine_sha256"),
                      "engine digest differs between the signed statement, the build record and the deployment pin")
        eng_link.need(manifest_sha == dep.get("manifest_sha256") == succ.get("manifest_sha256"),
                      "engine manifest digest differs from the one recorded at build and pinned at deployment")
        eng_link.need(dep.get("engine_id") == succ.get("engine_id"), "deployment names another engine id")
        eng_link.need(not signer or signer == succ.get("signing_key_id"),
                      "manifest signed by another key than the build recorded")
        dep_link.need(dep.get("engine_sha256") == succ.get("engine_sha256"), "deployment pins another engine")
        if dep_e and succ_e:
            dep_link.need(succ_e.index < dep_e.index, "deployment is recorded before its engine was built")

        # build: the ledger records against the signed attestation
        predicate = statement.get("predicate", {}) if isinstance(statement, dict) else {}
        definition = predicate.get("buildDefinition", {})
        params = definition.get("externalParameters", {})
        run = predicate.get("runDetails", {})
        bld_link.label = f"build #{build_id} ({build.get('backend')}, {build.get('precision')})"
        bld_link.need(build_id == started.get("build_id") == succ.get("build_id"), "build ids differ between its entries")
        for e, label in ((build_e, "requested"), (started_e, "started"), (succ_e, "succeeded")):
            if e:
                bld_link.need(e.subject == f"build:{build_id}", f"build.{label} entry is about {e.subject!r}")
        if build_e and started_e and succ_e:
            bld_link.need(build_e.index < started_e.index < succ_e.index, "build entries are out of order")
        if statement:
            bld_link.need(statement.get("predicateType") == dsse.PREDICATE_TYPE
                          and definition.get("buildType") == dsse.BUILD_TYPE, "attestation is not an engine build")
            for name in ("backend", "precision", "profiles", "repo"):
                bld_link.need(_same(params.get(name), build.get(name)),
                              f"{name} in the signed attestation differs from the build record")
            bld_link.need(run.get("metadata", {}).get("invocationId") == f"build-{build_id}",
                          "attestation is for another build")
            bld_link.need(_same(run.get("device"), started.get("device")),
                          "device in the attestation differs from the build.started record")
            bld_link.need(started.get("backend_version") in (run.get("builder", {}).get("version") or {}).values(),
                          "backend version in the attestation differs from the build.started record")
        else:
            bld_link.need(False, "no verified attestation to compare the build record with")

        # model
        mdl_link = _Link("model", where)
        model, model_e = self.entry(item["model"], f"{where}.model", "model.registered", mdl_link)
        msha = model.get("sha256")
        mdl_link.label = f"ONNX {model.get('name')}"
        if model_e:
            mdl_link.need(model_e.subject == f"model:{msha}", f"model entry is about {model_e.subject!r}")
            if build_e:
                mdl_link.need(model_e.index < build_e.index, "model registered after the build was requested")
        signed_model = params.get("model", {})
        deps = definition.get("resolvedDependencies", [])
        mdl_link.need(bool(msha) and msha == build.get("model_sha256") == signed_model.get("sha256"),
                      "ONNX digest differs between the signed attestation, the build record and the model record")
        mdl_link.need({"name": "model.onnx", "digest": {"sha256": msha}} in deps,
                      "attestation does not list the ONNX model as a dependency")
        mdl_link.need(signed_model.get("commit") == model.get("commit"),
                      "model commit in the attestation differs from the model record")

        commit = build.get("commit")
        cmt_link = _Link("commit", str(commit)[:12])
        cmt_link.need(bool(commit) and params.get("commit") == commit,
                      "commit in the signed attestation differs from the build record")
        cmt_link.need({"uri": f"git+{build.get('repo')}@{commit}", "digest": {"gitCommit": commit}} in deps,
                      "attestation does not list the commit as a dependency")

        submitter = build.get("submitter")
        sub_link = _Link("submitter", str(submitter))
        sub_link.need(bool(submitter) and params.get("submitter") == submitter,
                      "submitter in the signed attestation differs from the build record")
        if build_e:
            sub_link.need(build_e.actor == submitter, "build was requested by another actor than its submitter")

        training = ""
        if model.get("training_data_ref"):
            training = f"; training data {model['training_data_ref']} sha256 {model.get('training_data_sha256') or 'not recorded'}"
        return {
            "deployment": dep, "deployment_entry": dep_e,
            "links": [
                (dep_link, f"pins engine {str(dep.get('engine_sha256'))[:16]}… and its manifest; "
                           f"deployed by {dep_e.actor if dep_e else '?'}"),
                (eng_link, f"sha256 {subject_sha}, DSSE signature by build key {signer[:16]} verified, "
                           "same digest in the build record and the deployment pin"),
                (bld_link, f"requested by {submitter}; backend {build.get('backend')} "
                           f"{started.get('backend_version')}; record equals the signed attestation"),
                (mdl_link, f"sha256 {msha} from {model.get('repo')}{training}"),
                (cmt_link, f"{build.get('repo')} @ {commit}, as signed in the attestation"),
                (sub_link, "requested the build, as signed in the attestation"),
            ],
        }

    def _build_key(self, key_id: str):
        raw = self.build_keys.get(key_id)
        return Ed25519PublicKey.from_public_bytes(raw) if raw else None

    def prediction(self, ar, where: str, chains: dict) -> tuple[Check, dict]:
        link = _Link("prediction", where)
        rec, e = self.entry(ar, where, "prediction.recorded", link)
        iid = rec.get("inference_id")
        link.label = str(iid)
        if e:
            link.need(e.subject == f"prediction:{iid}", f"prediction entry is about {e.subject!r}")
            try:
                link.need(_time(rec.get("timestamp"), "timestamp") == e.time, "timestamp differs from the entry time")
            except Malformed as exc:
                link.need(False, str(exc))
        chain = chains.get(rec.get("deployment_id"))
        if link.need(chain is not None, f"deployment #{rec.get('deployment_id')} of the prediction is not in the bundle"):
            dep = chain["deployment"]
            link.need(rec.get("engine_sha256") == dep.get("engine_sha256"),
                      "engine digest of the prediction differs from the deployment's pinned digest")
            if e and chain["deployment_entry"]:
                link.need(chain["deployment_entry"].index < e.index, "prediction recorded before its deployment")
        return link.check(f"ledger entry #{e.index if e else '?'} at {rec.get('timestamp')}, served by deployment "
                          f"#{rec.get('deployment_id')} with engine {str(rec.get('engine_sha256'))[:16]}…"), rec

    # ---- the whole bundle

    def run(self) -> list[Check]:
        b = self.bundle
        scope = b["scope"]
        if not isinstance(scope, dict) or scope.get("kind") not in ("prediction", "case", "service"):
            raise Malformed("scope.kind must be prediction, case or service")
        if scope["kind"] == "prediction":
            _keys(scope, {"kind", "inference_id"}, "scope")
        elif scope["kind"] == "case":
            _keys(scope, {"kind", "case_id", "inference_id"}, "scope")
            _int(scope["case_id"], "scope.case_id")
        else:
            _keys(scope, {"kind", "service", "since", "until"}, "scope")
            _str(scope["service"], "scope.service")
        if not self.checkpoint():
            return self.checks

        chains, chain_order = {}, []
        for i, item in enumerate(_list(b["deployments"], "deployments")):
            facts = self.chain(item, f"deployments[{i}]")
            chains.setdefault(facts["deployment"].get("deployment_id"), facts)
            chain_order.append(facts)
        preds = []
        pred_checks = []
        for i, ar in enumerate(_list(b["predictions"], "predictions")):
            check, rec = self.prediction(ar, f"predictions[{i}]", chains)
            pred_checks.append(check)
            preds.append(rec)

        scope_link = _Link("scope")
        if scope["kind"] in ("prediction", "case"):
            scope_link.need(len(preds) == 1 and preds[0].get("inference_id") == scope["inference_id"],
                            "the bundle must hold exactly the prediction named by its scope")
            scope_link.need(len(chain_order) == 1, "the bundle must hold exactly one deployment chain")
        else:
            since, until = _time(scope["since"], "scope.since"), _time(scope["until"], "scope.until")
            scope_link.need(since < until, "scope window is empty")
            for facts in chain_order:
                dep_id = facts["deployment"].get("deployment_id")
                scope_link.need(facts["deployment"].get("service") == scope["service"],
                                f"deployment #{dep_id} belongs to another service")
                entry = facts["deployment_entry"]
                scope_link.need(entry is None or entry.time < until, f"deployment #{dep_id} began after the window")
            for rec in preds:
                try:
                    when = _time(rec.get("timestamp"), "timestamp")
                    scope_link.need(since <= when < until, f"prediction {rec.get('inference_id')} is outside the window")
                except Malformed as exc:
                    scope_link.need(False, str(exc))
        # one set of per-link verdicts per chain, in chain order
        if len(pred_checks) <= 20:
            self.checks.extend(pred_checks)
        else:
            bad = [c for c in pred_checks if not c.ok]
            self.checks.extend(bad)
            if not bad:
                self.checks.append(Check("predictions", True, f"{len(pred_checks)} predictions, each included in the "
                                                                "checkpoint and linked to its deployment's engine",
                                         label=f"{len(pred_checks)} predictions"))
        for facts in chain_order:
            for link, detail in facts["links"]:
                self.checks.append(link.check(detail))

        self._alerts()
        self._case_events(scope)
        self._keys_registered()
        self._disclosed(scope, preds)
        for kid in self.build_keys:
            if ("build", bytes.fromhex(kid)) not in self.used_keys:
                self.checks.append(Check("keys", False, f"build key {kid[:16]} in the bundle signs nothing"))
        self.checks.append(scope_link.check(self._scope_text(scope)))
        self.checks.append(Check("ledger", True, f"{self.entries_ok} ledger entries, each hashed from its exact "
                                                 f"body and proven included in the checkpoint of size {self.size}"))
        self.checks[-1].ok = all(c.ok for c in self.checks[:-1])
        if not self.checks[-1].ok:
            self.checks[-1].detail = "some records or entries failed (see above)"
        return self.checks

    def _scope_text(self, scope: dict) -> str:
        if scope["kind"] == "service":
            return (f"service {scope['service']} from {scope['since']} to {scope['until']}: every record lies in the "
                    "window (the window's completeness is the exporter's claim)")
        extra = f" (case {scope['case_id']})" if scope["kind"] == "case" else ""
        return f"prediction {scope['inference_id']}{extra}"

    def _alerts(self) -> None:
        items = _list(self.bundle["alerts"], "alerts")
        link = _Link("alerts")
        for i, ar in enumerate(items):
            rec, e = self.entry(ar, f"alerts[{i}]", "alert.raised", link)
            if e:
                link.need(rec.get("alert_id") is not None, f"alerts[{i}] has no alert id")
        self.checks.append(link.check(f"{len(items)} alert(s) in the period, each included in the checkpoint"))

    def _case_events(self, scope: dict) -> None:
        items = _list(self.bundle["case_events"], "case_events")
        if scope["kind"] != "case":
            if items:
                self.checks.append(Check("case", False, "case events in a bundle that is not about a case"))
            return
        link = _Link("case", f"case {scope['case_id']}")
        for i, ar in enumerate(items):
            rec, e = self.entry(ar, f"case_events[{i}]", "case.", link)
            if e:
                link.need(rec.get("case_id", scope["case_id"]) == scope["case_id"], f"case_events[{i}] is about another case")
                link.need(rec.get("inference_id", scope["inference_id"]) == scope["inference_id"],
                          f"case_events[{i}] is about another prediction")
        self.checks.append(link.check(f"{len(items)} case event(s), each included in the checkpoint"))

    def _keys_registered(self) -> None:
        items = _list(self.bundle["key_registrations"], "key_registrations")
        link = _Link("keys")
        keys = self.bundle["keys"]
        ledger_raw = {base64.b64encode(notes.parse_vkey(v).public_key).decode() for v in keys["ledger"]}
        witness_raw = {base64.b64encode(notes.parse_vkey(v).public_key).decode() for v in keys["witness"]}
        known = {"ledger": ledger_raw, "build": set(keys["build"]), "witness": witness_raw}
        for i, ar in enumerate(items):
            rec, e = self.entry(ar, f"key_registrations[{i}]", "key.registered", link)
            if e:
                link.need(rec.get("public_key") in known.get(rec.get("purpose"), set()),
                          f"key_registrations[{i}] registers a key that is not in the bundle")
                raw = base64.b64decode(str(rec.get("public_key")))
                link.need(rec.get("key_id") == hashlib.sha256(raw).hexdigest(),
                          f"key_registrations[{i}] key id does not match its key")
        how = "pinned with --key" if self.pinned else "taken from the bundle itself — pin them with --key"
        self.checks.append(link.check(f"{len(items)} key registration(s) found in the ledger; keys {how}"))

    def _disclosed(self, scope: dict, preds: list[dict]) -> None:
        disclosed = self.bundle["disclosed_input"]
        if disclosed is None:
            return
        link = _Link("input")
        _keys(disclosed, {"inference_id", "salt", "tensors"}, "disclosed_input")
        salt = _str(disclosed["salt"], "disclosed_input.salt")
        if not _HEX64.fullmatch(salt):
            raise Malformed("disclosed_input.salt must be 64 lowercase hex digits")
        tensors = []
        for i, t in enumerate(_list(disclosed["tensors"], "disclosed_input.tensors")):
            where = f"disclosed_input.tensors[{i}]"
            _keys(t, {"name", "dtype", "shape", "data"}, where)
            m = _DTYPE.fullmatch(_str(t["dtype"], f"{where}.dtype"))
            shape = [_int(d, f"{where}.shape") for d in _list(t["shape"], f"{where}.shape")]
            data = _b64(t["data"], f"{where}.data")
            if not m:
                raise Malformed(f"{where}.dtype must look like <f4, <i8, <b1")
            count = 1
            for d in shape:
                count *= d
            if len(data) != count * int(m.group(2)):
                raise Malformed(f"{where}: {len(data)} bytes do not fill shape {shape} of {t['dtype']}")
            tensors.append((_str(t["name"], f"{where}.name"), t["dtype"], shape, data))
        names = [t[0] for t in tensors]
        if names != sorted(set(names)):
            raise Malformed("disclosed_input.tensors must be sorted by name, each name once")
        pred = next((p for p in preds if p.get("inference_id") == disclosed["inference_id"]), None)
        if link.need(pred is not None and scope["kind"] != "service", "the disclosed input's prediction is not the bundle's"):
            digest = input_commitment(bytes.fromhex(salt), tensors)
            link.need(hmac.compare_digest(digest, str(pred.get("input_digest"))),
                      "disclosed input and salt do not match the prediction's input commitment")
        shapes = ", ".join(f"{n} {d}{list(s)}" for n, d, s, _ in tensors)
        self.checks.append(link.check(f"disclosed input ({shapes}) matches the salted commitment in the ledger"))


def input_commitment(salt: bytes, tensors: list[tuple[str, str, list[int], bytes]]) -> str:
    """SHA-256(salt ‖ encoding(inputs)), the encoding of inference/digests.py without numpy:
    per name in sorted order u32 len ‖ name ‖ u32 len ‖ dtype ‖ u32 ndim ‖ u64 dims ‖ u64 nbytes ‖ bytes."""
    h = hashlib.sha256(salt)
    for name, dtype, shape, data in sorted(tensors, key=lambda t: t[0]):
        name_b, dtype_b = name.encode(), dtype.encode()
        h.update(struct.pack("<I", len(name_b)) + name_b + struct.pack("<I", len(dtype_b)) + dtype_b)
        h.update(struct.pack(f"<I{len(shape)}Q", len(shape), *shape))
        h.update(struct.pack("<Q", len(data)))
        h.update(data)
    return h.hexdigest()


def verify_bytes(data: bytes, pinned: list[PinnedKey] | None = None) -> Result:
    """Verify a bundle given as bytes; never raises on bad input, reports it."""
    pinned = list(pinned or [])
    try:
        bundle = parse_bundle(data)
        verifier = Verifier(bundle, pinned)
        checks = verifier.run()
    except Malformed as exc:
        return Result([Check("bundle", False, f"malformed bundle: {exc}")], bool(pinned))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        return Result([Check("bundle", False, f"malformed bundle: {type(exc).__name__}: {exc}")], bool(pinned))
    checks.insert(0, Check("bundle", True, f"{FORMAT}, {len(data)} bytes, canonical encoding"))
    return Result(checks, bool(pinned), bundle["scope"])


def render(result: Result, path: str) -> str:
    lines = [f"TraceLedger evidence bundle {path}"]
    if not result.pinned:
        lines.append("WARNING: keys taken from the bundle itself — pin them with --key "
                     "(this proves the bundle is intact, not who made it)")
    width = max(len(c.name) for c in result.checks)
    for c in result.checks:
        lines.append(f"  {'PASS' if c.ok else 'FAIL'}  {c.name:<{width}}  {c.detail}")
        for extra in c.problems[1:]:
            lines.append(f"        {'':<{width}}  also: {extra}")
    if result.ok:
        lines.append("VERIFIED: every signature, digest, link and inclusion proof checks out"
                     + ("" if result.pinned else " (under the bundle's own keys)"))
    else:
        lines.append(f"FAILED: {sum(not c.ok for c in result.checks)} check(s) failed")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compliance.verify_bundle",
                                     description="Verify a TraceLedger evidence bundle offline.")
    parser.add_argument("bundle", help="the evidence bundle (JSON)")
    parser.add_argument("--key", action="append", default=[], metavar="PUBKEY",
                        help="pin a trusted public key file (vkey line, PEM or raw base64 Ed25519); repeatable")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        pinned = [k for path in args.key for k in load_key_file(path)]
        with open(args.bundle, "rb") as f:
            data = f.read()
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = verify_bytes(data, pinned)
    print(json.dumps(result.to_dict(), sort_keys=True) if args.json else render(result, args.bundle))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
