"""The checks: every signature, digest, chain link, inclusion proof and disclosed input
of a parsed bundle, against the pinned keys (or, unpinned, the keys it carries)."""
from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from compliance.ledger import dsse, merkle, notes, purposes, trustfile
from compliance.ledger.offline import completeness
from compliance.ledger.offline.disclosure import disclosed_check
from compliance.ledger.offline.parse import (
    BODY_KEYS,
    CHAIN_KEYS,
    FORMAT,
    Malformed,
    _b64,
    _int,
    _keys,
    _list,
    _reject_duplicates,
    _same,
    _str,
    _time,
    parse_bundle,
)
from compliance.ledger.offline.pinned import PinnedKey
from compliance.ledger.offline.results import Check, Result, _Link

# A cosignature dated later than this verifier's clock plus this skew is refused.
MAX_CLOCK_SKEW_S = 600


@dataclass
class Entry:
    index: int
    kind: str
    subject: str
    actor: str
    time: datetime
    payload: dict


class Verifier:
    def __init__(self, bundle: dict, pinned: list[PinnedKey], trust: trustfile.TrustFile | None = None):
        self.bundle = bundle
        self.pinned = pinned
        self.trust = trust
        self.note, self.extensions = "", ()
        self.checks: list[Check] = []
        self.size = 0
        self.root = b""
        self.entries_ok = 0
        self.used_keys: set[tuple[str, bytes]] = set()

    def is_pinned(self, raw: bytes, name: str | None, purpose: str) -> bool:
        """Whether `raw` (signing as `name`) is pinned for `purpose`: a key pinned for
        another purpose does not count (compliance.ledger.purposes)."""
        return any(p.matches(raw, name, purpose) for p in self.pinned)

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
        self._one_purpose_per_key(link, ledger, witnesses)
        self.note, self.extensions = note, cp.extensions
        ledger_sigs, witness_sigs = 0, []
        latest = int(time.time()) + MAX_CLOCK_SKEW_S
        for sig in sigs:
            who = f"{sig.name}+{sig.key_id.hex()}"
            lk = next((v for v in ledger if (v.name, v.key_id) == (sig.name, sig.key_id)), None)
            wk = next((v for v in witnesses if (v.name, v.key_id) == (sig.name, sig.key_id)), None)
            if lk is not None:
                problem = purposes.may_sign(purposes.LEDGER, purposes.CHECKPOINT, key_name=lk.name, origin=cp.origin)
                if not link.need(not problem and lk.sig_type == notes.SIG_ED25519,
                                 f"signature {who} does not count: {problem or 'a ledger key signs Ed25519 notes'}"):
                    continue
                try:
                    notes.verify_note(note, [lk])
                except notes.NoteError as exc:
                    link.need(False, f"ledger signature {who} does not verify: {exc}")
                    continue
                self.used_keys.add(("ledger", lk.key_id))
                ledger_sigs += 1
                if self.pinned:
                    link.need(self.is_pinned(lk.public_key, lk.name, purposes.LEDGER),
                              f"checkpoint signed by {who}, which is not pinned with --key as a ledger key")
            elif wk is not None:
                try:
                    if wk.sig_type == notes.SIG_COSIGNATURE_V1:
                        ts = notes.verify_cosignature(note, wk.name, wk.public_key, not_after=latest)
                    else:
                        notes.verify_note(note, [wk])
                        ts = None
                except notes.NoteError as exc:
                    link.need(False, f"witness signature {who} does not verify: {exc}"
                                     + (f" (more than {MAX_CLOCK_SKEW_S} s ahead of this clock)"
                                        if "future" in str(exc) else ""))
                    continue
                self.used_keys.add(("witness", wk.key_id))
                pinned = "pinned" if self.is_pinned(wk.public_key, wk.name, purposes.WITNESS) else "key from the bundle"
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

    def _one_purpose_per_key(self, link: _Link, ledger: list, witnesses: list) -> None:
        """A key has one purpose: the same key listed for two is refused."""
        seen: dict[bytes, str] = {}
        for purpose, raws in ((purposes.LEDGER, [v.public_key for v in ledger]), (purposes.BUILD, self.build_keys.values()),
                              (purposes.WITNESS, [v.public_key for v in witnesses])):
            for raw in raws:
                other = seen.setdefault(raw, purpose)
                link.need(other == purpose, f"key {base64.b64encode(raw).decode()[:16]} is listed as a {other} key and "
                                            f"as a {purpose} key: a key has one purpose")

    def bundle_keys(self) -> dict[str, list[bytes]]:
        keys = self.bundle["keys"]
        return {"ledger": [notes.parse_vkey(v).public_key for v in keys["ledger"]],
                "build": list(self.build_keys.values()),
                "witness": [notes.parse_vkey(v).public_key for v in keys["witness"]]}

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
                eng_link.need(self.is_pinned(self.build_keys[signer], None, purposes.BUILD),
                              f"engine manifest signed by key {signer[:16]}, which is not pinned with --key as a build key")
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
        completeness.check_signature(self)

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
        completeness.check_key_events(self)
        if self.trust is not None:
            completeness.check_quorum(self, self.trust)
        self.checks.extend(disclosed_check(self.bundle["disclosed_input"], scope, preds))
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



def verify_bytes(data: bytes, pinned: list[PinnedKey] | None = None,
                 trust: trustfile.TrustFile | None = None) -> Result:
    """Verify a bundle given as bytes; never raises on bad input, reports it.  With a
    trust file, its keys (and keys chained to them) are the pinned keys."""
    pinned = list(pinned or [])
    try:
        bundle = parse_bundle(data)
        if trust is not None:
            pinned = completeness.trust_pins(trust, bundle) + pinned
        verifier = Verifier(bundle, pinned, trust)
        checks = verifier.run()
    except Malformed as exc:
        return Result([Check("bundle", False, f"malformed bundle: {exc}")], bool(pinned))
    except (KeyError, TypeError, AttributeError, ValueError, RecursionError) as exc:  # RecursionError: nested text
        return Result([Check("bundle", False, f"malformed bundle: {type(exc).__name__}: {exc}")], bool(pinned))
    except (ArithmeticError, OSError, RecursionError, MemoryError) as exc:  # fails closed, never a traceback
        return Result([Check("bundle", False, f"bundle cannot be checked: {type(exc).__name__}: {exc}")], bool(pinned))
    checks.insert(0, Check("bundle", True, f"{FORMAT}, {len(data)} bytes, canonical encoding"))
    return Result(checks, bool(pinned), bundle["scope"])
