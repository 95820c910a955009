"""Signed checkpoints of the ledger: C2SP tlog-checkpoint bodies in signed notes,
signed with the ledger's Ed25519 key, stored append-only and exported as files so that
they can be published outside our control."""
from __future__ import annotations

import base64
import os
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import transaction

from compliance.ledger import keyevents, keylog, keys, keystate, ledger, notes, purposes, tree
from compliance.models import Checkpoint, LedgerEntry, LedgerHead


def origin() -> str:
    return settings.TRACELEDGER_LOG_ORIGIN


def export_dir() -> Path:
    return Path(settings.TRACELEDGER_CHECKPOINT_DIR)


def make_checkpoint() -> Checkpoint:
    """Sign the tree as it is now. The head lock keeps appends (and ledger key
    rotations) out while the root is computed and signed, so size, root and key belong
    together; the `checkpoint.created` entry commits with the checkpoint."""
    with transaction.atomic():
        head, _ = LedgerHead.objects.select_for_update().get_or_create(pk=1)
        signer = keys.get_signer("ledger")
        head.refresh_from_db()  # registering a new key appends an entry
        size = head.size
        latest = Checkpoint.objects.order_by("-id").first()
        if latest and (latest.size == size or _only_its_own_entry_since(latest, size)):
            return latest
        root = tree.root(size)
        body = notes.format_checkpoint(origin(), size, root, [registry_line(size)])
        note = notes.sign_note(body, origin(), signer.private_key)
        checkpoint = Checkpoint.objects.create(size=size, root_hash=root.hex(), note=note, key_id=signer.key_id)
        ledger.append("checkpoint.created",
                      {"checkpoint_id": checkpoint.id, "size": size, "root_hash": checkpoint.root_hash,
                       "key_id": signer.key_id},
                      subject=f"checkpoint:{checkpoint.id}")
    export(checkpoint)
    return checkpoint


def registry_line(size: int) -> str:
    """The extension line committing to the key registry below `size`."""
    return keylog.registry_line(*keylog.registry_digest(keyevents.registry_leaves(size)))


def _only_its_own_entry_since(checkpoint: Checkpoint, size: int) -> bool:
    """Whether the one entry after `checkpoint` is its own `checkpoint.created`: then
    nothing happened since, and a periodic run must not sign a new tree just for it."""
    return size == checkpoint.size + 1 and LedgerEntry.objects.filter(
        index=checkpoint.size, kind="checkpoint.created", subject=f"checkpoint:{checkpoint.id}").exists()


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def export(checkpoint: Checkpoint) -> Path:
    """Write the checkpoint note to <export dir>/<size>.checkpoint and `latest`."""
    directory = export_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{checkpoint.size:012d}.checkpoint"
    _write_atomically(path, checkpoint.note)
    _write_atomically(directory / "latest", checkpoint.note)
    return path


def export_witnessed(checkpoint: Checkpoint) -> Path:
    """Write the checkpoint note with every cosignature it has to
    <export dir>/<size>.witnessed and `latest.witnessed`."""
    note = checkpoint.note + "".join(c.line for c in checkpoint.cosignatures.order_by("id"))
    directory = export_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{checkpoint.size:012d}.witnessed"
    _write_atomically(path, note)
    newest = Checkpoint.objects.filter(cosignatures__isnull=False).order_by("-id").first()
    if newest is None or newest.id == checkpoint.id:
        _write_atomically(directory / "latest.witnessed", note)
    return path


def latest() -> Checkpoint | None:
    return Checkpoint.objects.order_by("-id").first()


def ledger_vkey() -> str:
    """The current ledger key as a C2SP verifier key string."""
    signer = keys.get_signer("ledger")
    return notes.format_vkey(origin(), signer.public_key)


def root_b64(checkpoint: Checkpoint) -> str:
    return base64.b64encode(bytes.fromhex(checkpoint.root_hash)).decode()


class CheckpointInvalid(ValueError):
    pass


class Keyring:
    """The public keys of one purpose as the ledger's key entries register them (never
    the key table), indexed by C2SP key id, for checking many checkpoint signatures
    (ledger) or cosignatures (witness) in one run.  A key counts only for what its
    purpose allows (compliance.ledger.purposes), and only for a signature made before
    the ledger recorded its retirement or revocation (compliance.ledger.keystate)."""

    def __init__(self, purpose: str, log: keylog.KeyLog | None = None):
        self.purpose = purposes.check_purpose(purpose)
        self.keys = (keyevents.load() if log is None else log).of_purpose(purpose)
        self._raw = {k.key_id: base64.b64decode(k.public_key) for k in self.keys}
        self._times = keystate.times_of(self._raw)
        self._by_c2sp: dict[tuple[str, bytes, int], keylog.KeyState] = {}

    def _lookup(self, name: str, kid: bytes, sig_type: int) -> keylog.KeyState | None:
        cache_key = (name, kid, sig_type)
        if cache_key not in self._by_c2sp:
            found = None
            if notes.is_valid_name(name):
                for key in self.keys:
                    if notes.key_id(name, self._raw[key.key_id], sig_type) == kid:
                        found = key
                        break
            self._by_c2sp[cache_key] = found
        return self._by_c2sp[cache_key]

    def vkeys(self, name: str, sig_type: int = notes.SIG_ED25519) -> list[str]:
        return [notes.format_vkey(name, self._raw[k.key_id], sig_type) for k in self.keys]

    def check_checkpoint(self, note: str, signed_at: datetime | None) -> tuple[notes.Checkpoint, keylog.KeyState]:
        """Parse a signed checkpoint note and verify it under a registered ledger key
        that was not revoked when it signed; CheckpointInvalid says what is wrong."""
        try:
            body, sigs = notes.parse_note(note)
            parsed = notes.parse_checkpoint(body)
        except notes.NoteError as exc:
            raise CheckpointInvalid(f"malformed checkpoint note ({exc})") from None
        if parsed.origin != origin():
            raise CheckpointInvalid(f"origin {parsed.origin!r} is not this ledger's ({origin()!r})")
        try:
            purposes.require(self.purpose, purposes.CHECKPOINT, key_name=parsed.origin, origin=parsed.origin)
        except purposes.PurposeError as exc:
            raise CheckpointInvalid(str(exc)) from None
        signer = None
        for sig in sigs:
            if not purposes.may_sign(self.purpose, purposes.CHECKPOINT, key_name=sig.name, origin=parsed.origin):
                signer = self._lookup(sig.name, sig.key_id, notes.SIG_ED25519)
                if signer is not None:
                    break
        if signer is None:
            ids = ", ".join(s.key_id.hex() for s in sigs if s.name == parsed.origin) or "none"
            raise CheckpointInvalid(f"not signed by a registered {self.purpose} key (signature key ids: {ids})")
        raw = self._raw[signer.key_id]
        try:
            notes.verify_note(note, [notes.VerifierKey(parsed.origin, notes.key_id(parsed.origin, raw), notes.SIG_ED25519, raw)])
        except notes.NoteError as exc:
            raise CheckpointInvalid(f"signature by key {signer.key_id[:16]} does not verify ({exc})") from None
        problem = self._times.get(signer.key_id, keystate.KeyTimes()).problem(signer.key_id, signed_at)
        if problem:
            raise CheckpointInvalid(f"signed by {problem}")
        return parsed, signer

    def check_cosignature(self, note: str, line: str, key_id: str, signed_at: datetime | None) -> keylog.KeyState:
        """Verify one witness cosignature line on a checkpoint note."""
        try:
            purposes.require(self.purpose, purposes.COSIGNATURE)
        except purposes.PurposeError as exc:
            raise CheckpointInvalid(str(exc)) from None
        key = next((k for k in self.keys if k.key_id == key_id), None)
        if key is None:
            raise CheckpointInvalid(f"cosigned by key {key_id[:16]}, which is not a registered {self.purpose} key")
        try:
            body, _ = notes.parse_note(note)
            (sig,) = notes.parse_note(body + "\n" + line)[1]
            notes.verify_cosignature(body + "\n" + line, sig.name, self._raw[key.key_id])
        except (notes.NoteError, ValueError) as exc:
            raise CheckpointInvalid(f"cosignature by key {key_id[:16]} does not verify ({exc})") from None
        problem = self._times.get(key.key_id, keystate.KeyTimes()).problem(key.key_id, signed_at)
        if problem:
            raise CheckpointInvalid(f"cosigned by {problem}")
        return key
