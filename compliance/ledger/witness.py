"""A witness: cosigns a checkpoint only after checking that it extends the last one it
cosigned (C2SP tlog-cosignature, cosignature/v1 lines).

It trusts nothing in our database that it can check for itself:
- its memory (the last size and root it cosigned) is a state file in its own directory;
- it verifies the checkpoint's signature under ledger keys pinned in its own directory
  (`ledger.vkeys`, one C2SP vkey a line: trust on first use, from the keys registered
  then, or `witness --trust-vkey` after a ledger key rotation);
- the consistency proof comes from the database, but it is checked against the two
  signed roots, so a database that lies cannot pass it.
A checkpoint smaller than the last cosigned one is a rollback, one that does not
extend it is a fork: the witness refuses, raises an alert and keeps its state.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from compliance.ledger import checkpoints, events, keys, ledger, merkle, notes, purposes, tree
from compliance.models import Checkpoint, WitnessCosignature


class WitnessRefused(RuntimeError):
    """The witness will not cosign; `kind` names the alert it raised (if any)."""

    def __init__(self, message: str, kind: str = ""):
        super().__init__(message)
        self.kind = kind


@dataclass
class WitnessState:
    origin: str
    size: int
    root_hash: str  # base64, as in the checkpoint
    checkpoint_id: int
    cosigned_at: int

    @property
    def root(self) -> bytes:
        return notes._b64decode(self.root_hash) or b""


@dataclass
class Cosigned:
    status: str  # "cosigned" or "already_cosigned"
    checkpoint_id: int
    size: int
    root_hash: str
    previous_size: int | None
    line: str
    witness_vkey: str
    exported: str

    def to_dict(self) -> dict:
        return asdict(self)


def _now() -> int:
    return int(time.time())


class Witness:
    def __init__(self, name: str | None = None, directory: Path | str | None = None):
        self.name = name or settings.TRACELEDGER_WITNESS_NAME
        if not notes.is_valid_name(self.name):
            raise WitnessRefused(f"invalid witness name {self.name!r}")
        self.directory = Path(directory or settings.TRACELEDGER_WITNESS_DIR)

    @property
    def state_path(self) -> Path:
        return self.directory / "state.json"

    @property
    def vkeys_path(self) -> Path:
        return self.directory / "ledger.vkeys"

    # -------------------------------------------------------------- own files

    def _write(self, path: Path, text: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def load_state(self) -> WitnessState | None:
        if not self.state_path.exists():
            return None
        try:
            return WitnessState(**json.loads(self.state_path.read_text()))
        except (ValueError, TypeError) as exc:
            raise WitnessRefused(f"witness state {self.state_path} is unreadable ({exc})") from None

    def save_state(self, state: WitnessState) -> None:
        self._write(self.state_path, json.dumps(asdict(state), indent=1, sort_keys=True) + "\n")

    def trusted_vkeys(self) -> list[str]:
        """Ledger vkeys this witness trusts; on first use, those registered now."""
        if not self.vkeys_path.exists():
            ring = checkpoints.Keyring("ledger")
            vkeys = [v for k, v in zip(ring.keys, ring.vkeys(checkpoints.origin())) if k.revoked_at is None]
            if not vkeys:
                return []
            self._write(self.vkeys_path, "".join(v + "\n" for v in vkeys))
        lines = [line.strip() for line in self.vkeys_path.read_text().splitlines()]
        return [line for line in lines if line and not line.startswith("#")]

    def trust(self, vkey: str) -> str:
        """Pin one more ledger vkey (after a ledger key rotation)."""
        try:
            parsed = notes.parse_vkey(vkey.strip())
        except notes.NoteError as exc:
            raise WitnessRefused(f"not a valid vkey ({exc})") from None
        if parsed.sig_type != notes.SIG_ED25519:
            raise WitnessRefused("a ledger vkey must be an Ed25519 (type 0x01) key")
        current = self.trusted_vkeys()
        if vkey.strip() not in current:
            self._write(self.vkeys_path, "".join(v + "\n" for v in [*current, vkey.strip()]))
        return vkey.strip()

    def vkey(self) -> str:
        signer = keys.get_signer("witness")
        return notes.format_vkey(self.name, signer.public_key, notes.SIG_COSIGNATURE_V1)

    # -------------------------------------------------------------- witnessing

    def _refuse(self, kind: str, message: str, details: dict) -> WitnessRefused:
        events.report(kind, message, severity="critical", subject="ledger", details=details | {"witness": self.name})
        return WitnessRefused(message, kind)

    def cosign_latest(self) -> Cosigned:
        checkpoint = checkpoints.latest()
        if checkpoint is None:
            raise WitnessRefused("there is no checkpoint to cosign yet (run `manage.py checkpoint`)")
        return self.cosign(checkpoint)

    def cosign(self, checkpoint: Checkpoint) -> Cosigned:
        signer = keys.get_signer("witness")
        try:
            signed_by = notes.verify_note(checkpoint.note, self.trusted_vkeys())
            origin = notes.parse_checkpoint(notes.parse_note(checkpoint.note)[0]).origin
            # the one purpose rule: a checkpoint counts under a ledger key named after its origin
            if origin not in signed_by:
                raise notes.NoteError(purposes.may_sign(purposes.LEDGER, purposes.CHECKPOINT,
                                                        key_name=signed_by[0], origin=origin))
        except notes.NoteError as exc:
            raise self._refuse("ledger.checkpoint_untrusted",
                               f"checkpoint #{checkpoint.id} is not signed by a ledger key this witness trusts ({exc})",
                               {"checkpoint_id": checkpoint.id}) from None
        body, _ = notes.parse_note(checkpoint.note)
        new = notes.parse_checkpoint(body)
        new_root_b64 = body.split("\n")[2]
        state = self.load_state()
        details = {"checkpoint_id": checkpoint.id, "size": new.size, "root_hash": new_root_b64}
        if state is not None:
            details |= {"cosigned_size": state.size, "cosigned_root_hash": state.root_hash,
                        "cosigned_checkpoint_id": state.checkpoint_id}
            if state.origin != new.origin:
                raise WitnessRefused(f"this witness follows {state.origin!r}, the checkpoint is for {new.origin!r}")
            if new.size < state.size:
                raise self._refuse("ledger.rollback_detected",
                                   f"rollback: checkpoint #{checkpoint.id} has {new.size} entries, this witness "
                                   f"already cosigned {state.size}", details)
            if new.size == state.size and new.root_hash != state.root:
                raise self._refuse("ledger.fork_detected",
                                   f"fork: checkpoint #{checkpoint.id} has a different root at size {new.size} "
                                   f"than the one this witness cosigned", details)
            if new.size > state.size:
                try:
                    proof = tree.consistency_proof(state.size, new.size)
                except merkle.MissingNodeError:
                    proof = None
                if proof is None or not merkle.verify_consistency(state.size, new.size, state.root, new.root_hash, proof):
                    raise self._refuse("ledger.fork_detected",
                                       f"fork: checkpoint #{checkpoint.id} (size {new.size}) does not extend the "
                                       f"checkpoint this witness cosigned at size {state.size}", details)
        timestamp = _now()
        line = notes.cosign(body, self.name, signer.private_key, timestamp)
        with transaction.atomic():
            cosig, created = WitnessCosignature.objects.get_or_create(
                checkpoint=checkpoint, key_id=signer.key_id,
                defaults={"witness": self.name, "timestamp": timestamp, "line": line})
            if created:
                ledger.append("checkpoint.cosigned",
                              {"checkpoint_id": checkpoint.id, "size": new.size, "root_hash": checkpoint.root_hash,
                               "witness": self.name, "key_id": signer.key_id, "timestamp": timestamp},
                              subject=f"checkpoint:{checkpoint.id}", actor=f"witness:{self.name}")
        exported = checkpoints.export_witnessed(checkpoint)
        self.save_state(WitnessState(new.origin, new.size, new_root_b64, checkpoint.id, cosig.timestamp))
        return Cosigned("cosigned" if created else "already_cosigned", checkpoint.id, new.size, new_root_b64,
                        state.size if state else None, cosig.line, self.vkey(), str(exported))
