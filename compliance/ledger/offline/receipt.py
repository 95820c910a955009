"""Per-prediction receipts: an offline inclusion proof in the C2SP tlog-proof format
(c2sp.org/tlog-proof), checked against the auditor's trust file.

    c2sp.org/tlog-proof@v1
    extra <base64 of the ledger entry's exact canonical JSON body>
    index <the entry's index>
    <base64 inclusion proof hashes, one a line, leaf's sibling first>
    (empty line)
    <the checkpoint, a C2SP signed note, with its witness cosignatures>

The extra data is not trusted as such: its leaf hash SHA-256(0x00 || body) must be
proven included at `index` in the checkpoint, whose signature must verify under a
ledger key the trust file pins, with the file's quorum of pinned witnesses.
"""
from __future__ import annotations

import base64
import binascii
import json

from compliance.ledger import merkle, notes, trustfile
from compliance.ledger.offline.results import Check, Result, _Link

HEADER = "c2sp.org/tlog-proof@v1"


class ReceiptError(ValueError):
    pass


def format_receipt(body: bytes, index: int, proof: list[bytes], witnessed_note: str) -> str:
    lines = [HEADER, f"extra {base64.b64encode(body).decode()}", f"index {index}",
             *(base64.b64encode(h).decode() for h in proof)]
    return "\n".join(lines) + "\n\n" + witnessed_note


def _b64(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ReceiptError(f"{what} is not base64") from None
    if base64.b64encode(raw).decode() != text:
        raise ReceiptError(f"{what} is not canonical base64")
    return raw


def parse_receipt(text: str) -> tuple[bytes, int, list[bytes], str]:
    """(entry body, index, proof, checkpoint note)."""
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise ReceiptError("no empty line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise ReceiptError(f"the first line must be {HEADER}")
    rest = lines[1:]
    if not rest or not rest[0].startswith("extra "):
        raise ReceiptError("a TraceLedger receipt carries its entry as the extra data")
    body = _b64(rest[0][6:], "extra")
    if len(rest) < 2 or not rest[1].startswith("index "):
        raise ReceiptError("no index line")
    index_text = rest[1][6:]
    if not index_text.isdigit() or (index_text != "0" and index_text.startswith("0")):
        raise ReceiptError("the index must be a decimal with no leading zeroes")
    proof = [_b64(line, "a proof line") for line in rest[2:]]
    if any(len(h) != 32 for h in proof):
        raise ReceiptError("a proof line is not a SHA-256 hash")
    return body, int(index_text), proof, note


def verify_receipt(data: bytes, trust: trustfile.TrustFile | None) -> Result:
    try:
        body, index, proof, note = parse_receipt(data.decode("utf-8"))
        parsed = notes.parse_checkpoint(notes.parse_note(note)[0])
    except (UnicodeDecodeError, ReceiptError, notes.NoteError) as exc:
        return Result([Check("receipt", False, f"malformed receipt: {exc}")], trust is not None)
    checks = [Check("receipt", True, f"{HEADER}, entry #{index}, checkpoint size {parsed.size}")]
    cp = _Link("checkpoint")
    if cp.need(trust is not None, "a receipt is checked against a trust file: pass --trust FILE"):
        cp.need(parsed.origin == trust.origin, f"checkpoint of log {parsed.origin!r}, the trust file's is {trust.origin!r}")
        try:
            notes.verify_note(note, trust.ledger_verifiers())
        except notes.NoteError as exc:
            cp.need(False, f"not signed by a ledger key the trust file pins ({exc})")
    checks.append(cp.check(f"{parsed.origin} size {parsed.size} signed by a pinned ledger key"))
    if trust is not None:
        names = trustfile.witness_count(note, trust.witness_verifiers())
        w = _Link("witnesses")
        w.need(len(names) >= trust.quorum, f"{len(names)} pinned witness cosignature(s); the trust file's policy "
                                           f"needs {trust.quorum}")
        checks.append(w.check(f"cosigned by {', '.join(names) or 'no witness'} (policy: {trust.quorum})"))
    entry = _Link("entry")
    leaf = merkle.leaf_hash(body)
    entry.need(index < parsed.size and merkle.verify_inclusion(leaf, index, parsed.size, proof, parsed.root_hash),
               f"entry #{index} is not included in the checkpoint (inclusion proof fails)")
    try:
        doc = json.loads(body)
    except ValueError:
        doc = {}
    payload = doc.get("payload") if isinstance(doc, dict) else None
    entry.need(isinstance(payload, dict) and doc.get("index") == index, "the entry body is not a ledger entry at its index")
    label = f"{doc.get('kind')} {doc.get('subject')}" if isinstance(doc, dict) else ""
    checks.append(entry.check(f"{label} at {doc.get('time') if isinstance(doc, dict) else ''}: hashed from its exact "
                              "body and proven included"))
    return Result(checks, trust is not None, {"kind": "receipt", "index": index})
