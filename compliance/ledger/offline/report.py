"""The verdict for people (one line per link, then VERIFIED or FAILED) and the
command line."""
from __future__ import annotations

import argparse
import json
import sys

from compliance.ledger import trustfile
from compliance.ledger.offline.checks import verify_bytes
from compliance.ledger.offline.parse import MAX_BUNDLE_BYTES
from compliance.ledger.offline.pinned import load_key_file, parse_key_argument
from compliance.ledger.offline.receipt import HEADER, verify_receipt
from compliance.ledger.offline.results import Result


def render(result: Result, path: str) -> str:
    what = "receipt" if result.scope.get("kind") == "receipt" else "evidence bundle"
    lines = [f"TraceLedger {what} {path}"]
    if not result.pinned:
        lines.append("WARNING: keys taken from the bundle itself — pin them with --key or --trust "
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
    parser.add_argument("bundle", help="the evidence bundle (JSON) or a receipt (c2sp.org/tlog-proof@v1)")
    parser.add_argument("--key", action="append", default=[], metavar="[PURPOSE=]PUBKEY",
                        help="pin a trusted public key file (vkey line, PEM or raw base64 Ed25519) for its purpose: "
                             "ledger, build or witness, from PURPOSE=, a 'purpose:' line in the file or the names "
                             "export_report gives (ledger.vkey, build.pub, witness.vkey); repeatable")
    parser.add_argument("--trust", metavar="FILE",
                        help="the auditor's trust file (manage.py trust export): its keys are the pinned keys")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        pinned = [k for arg in args.key for k in load_key_file(*reversed(parse_key_argument(arg)))]
        trust = trustfile.read(args.trust) if args.trust else None
        with open(args.bundle, "rb") as f:
            data = f.read(MAX_BUNDLE_BYTES + 1)  # a larger file is refused by parse_bundle, unread
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if data.startswith(HEADER.encode() + b"\n"):
        result = verify_receipt(data, trust)
    else:
        result = verify_bytes(data, pinned, trust)
    print(json.dumps(result.to_dict(), sort_keys=True) if args.json else render(result, args.bundle))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
