"""A witness that runs on another host: standard library and `cryptography` only, no
Django and no database, talking to the log's published endpoints alone.

    python -m compliance.ledger.remotewitness init --dir DIR --name NAME     # prints its vkey
    python -m compliance.ledger.remotewitness run --log URL --dir DIR [--token T] [--trust-vkey VKEY]

Its directory holds everything it trusts: its own Ed25519 key (witness.pem, 0600),
the ledger vkeys it pins (ledger.vkeys), and its memory (state.json: the last size and
root it cosigned).  One run fetches GET /api/v1/ledger/checkpoint/, verifies the note
under the pinned ledger keys, fetches GET /api/v1/ledger/proof/consistency/?old=M&new=N
and checks it against its own remembered root and the new signed root, and only then
cosigns (C2SP cosignature/v1) and POSTs the cosigned note to
/api/v1/ledger/witness/cosignatures/.  A smaller tree is a rollback and a tree that does
not extend the remembered one is a fork: it refuses, keeps its state, POSTs a report
signed with its key to /api/v1/ledger/witness/alarms/ (the log raises a critical
alert) and exits 1.  The operator registers its key once with
`manage.py keys register-witness VKEY`; the auditor pins it in the trust file.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from compliance.ledger import merkle, notes

TIMEOUT_S = 30


class WitnessStop(RuntimeError):
    """The witness will not cosign; `alarm` is "fork" or "rollback" when it saw one."""

    def __init__(self, message: str, alarm: str = ""):
        super().__init__(message)
        self.alarm = alarm


@dataclass
class RemoteWitness:
    directory: Path
    log_url: str = ""
    token: str = ""

    # ------------------------------------------------------------ own files

    @property
    def key_path(self) -> Path:
        return self.directory / "witness.pem"

    def _write(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.directory / name)

    def init(self, name: str) -> str:
        if not notes.is_valid_name(name):
            raise WitnessStop(f"invalid witness name {name!r}")
        if not self.key_path.exists():
            key = Ed25519PrivateKey.generate()
            self._write("witness.pem", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()), 0o600)
            self._write("name", name.encode() + b"\n")
        return self.vkey()

    @property
    def name(self) -> str:
        return (self.directory / "name").read_text().strip()

    def private_key(self) -> Ed25519PrivateKey:
        if not self.key_path.exists():
            raise WitnessStop(f"no witness key in {self.directory}: run `init` first")
        if self.key_path.stat().st_mode & 0o077:
            raise WitnessStop(f"{self.key_path} is readable by others; chmod 600 it")
        return serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)

    def vkey(self) -> str:
        return notes.format_vkey(self.name, self.private_key().public_key(), notes.SIG_COSIGNATURE_V1)

    def pinned_vkeys(self) -> list[str]:
        path = self.directory / "ledger.vkeys"
        return [line.strip() for line in path.read_text().splitlines() if line.strip()] if path.exists() else []

    def pin(self, vkey: str) -> None:
        parsed = notes.parse_vkey(vkey.strip())
        if parsed.sig_type != notes.SIG_ED25519:
            raise WitnessStop("a ledger vkey is an Ed25519 (type 0x01) key")
        current = self.pinned_vkeys()
        if vkey.strip() not in current:
            self._write("ledger.vkeys", "".join(v + "\n" for v in [*current, vkey.strip()]).encode())

    def state(self) -> dict | None:
        path = self.directory / "state.json"
        return json.loads(path.read_text()) if path.exists() else None

    # ------------------------------------------------------------ the log's endpoints

    def _request(self, path: str, body: dict | None = None) -> dict:
        url = self.log_url.rstrip("/") + path
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method="POST" if body is not None else "GET")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace")
            raise WitnessStop(f"{url} answered {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise WitnessStop(f"cannot reach {url}: {exc}") from None

    # ------------------------------------------------------------ witnessing

    def run(self) -> dict:
        """Check the log's newest checkpoint and cosign it; WitnessStop says why not."""
        key = self.private_key()
        latest = self._request("/api/v1/ledger/checkpoint/")
        note = latest.get("checkpoint")
        if not self.pinned_vkeys():
            if not latest.get("ledger_vkey"):
                raise WitnessStop("no ledger key pinned; pass --trust-vkey")
            self.pin(latest["ledger_vkey"])  # trust on first use, like the in-process witness
        try:
            notes.verify_note(note, self.pinned_vkeys())
            body, _ = notes.parse_note(note)
            new = notes.parse_checkpoint(body)
        except notes.NoteError as exc:
            raise WitnessStop(f"the log's checkpoint is not signed by a ledger key this witness pins ({exc})") from None
        state = self.state()
        if state is not None:
            old_root = base64.b64decode(state["root_hash"])
            if state["origin"] != new.origin:
                raise WitnessStop(f"this witness follows {state['origin']!r}, the log says {new.origin!r}")
            if new.size < state["size"]:
                self._alarm("rollback", f"rollback: the log's checkpoint has {new.size} entries, this witness "
                                        f"cosigned {state['size']}", new.size, state["size"])
            if new.size == state["size"] and new.root_hash != old_root:
                self._alarm("fork", f"fork: a different root at size {new.size} than the one this witness "
                                    "cosigned", new.size, state["size"])
            if new.size > state["size"]:
                proof = self._request(f"/api/v1/ledger/proof/consistency/?old={state['size']}&new={new.size}")
                hashes = [base64.b64decode(h) for h in proof.get("proof", [])]
                if not merkle.verify_consistency(state["size"], new.size, old_root, new.root_hash, hashes):
                    self._alarm("fork", f"fork: the log's checkpoint (size {new.size}) does not extend the one this "
                                        f"witness cosigned at size {state['size']}", new.size, state["size"])
        line = notes.cosign(body, self.name, key, int(time.time()))
        self._request("/api/v1/ledger/witness/cosignatures/", {"note": note + line})
        self._write("latest.witnessed", (note + line).encode())
        self._write("state.json", json.dumps({"origin": new.origin, "size": new.size,
                                              "root_hash": base64.b64encode(new.root_hash).decode()},
                                             sort_keys=True).encode())
        return {"size": new.size, "previous_size": state["size"] if state else None, "line": line.strip()}

    def _alarm(self, kind: str, message: str, size: int, cosigned_size: int) -> None:
        key = self.private_key()
        from hashlib import sha256

        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        report = {"kind": kind, "message": message, "size": size, "cosigned_size": cosigned_size,
                  "key_id": sha256(raw).hexdigest(), "witness": self.name}
        signed = b"traceledger/witness-alarm/v1\n" + json.dumps(report, sort_keys=True, separators=(",", ":")).encode()
        try:
            self._request("/api/v1/ledger/witness/alarms/",
                          {"report": report, "signature": base64.b64encode(key.sign(signed)).decode()})
        except WitnessStop:
            pass  # the alarm is still this process's exit status and message
        raise WitnessStop(message, kind)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compliance.ledger.remotewitness",
                                     description="A TraceLedger witness on another host.")
    sub = parser.add_subparsers(dest="action", required=True)
    init = sub.add_parser("init", help="make this witness's key; prints its vkey to register")
    init.add_argument("--dir", required=True)
    init.add_argument("--name", required=True, help="the witness's key name, e.g. witness.example.org/w1")
    run = sub.add_parser("run", help="verify and cosign the log's newest checkpoint")
    run.add_argument("--dir", required=True)
    run.add_argument("--log", required=True, help="the log's base URL, e.g. https://traceledger.example.org")
    run.add_argument("--token", default=os.environ.get("TRACELEDGER_TOKEN", ""), help="API token (or TRACELEDGER_TOKEN)")
    run.add_argument("--trust-vkey", help="pin a ledger vkey (first run, or after a ledger key rotation)")
    args = parser.parse_args(argv)
    witness = RemoteWitness(Path(args.dir), getattr(args, "log", ""), getattr(args, "token", ""))
    try:
        if args.action == "init":
            print(witness.init(args.name))
            return 0
        if args.trust_vkey:
            witness.pin(args.trust_vkey)
        done = witness.run()
    except (WitnessStop, notes.NoteError) as exc:
        print(f"witness refused: {exc}", file=sys.stderr)
        return 1
    since = f"extends size {done['previous_size']}" if done["previous_size"] is not None else "first cosignature"
    print(f"cosigned size {done['size']} ({since})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
