"""`python -m compliance.verify_bundle BUNDLE [--key PUBKEY ...] [--json]`: the offline
verifier's entry point, kept at this path because reports and regulators use it. The
verifier itself is compliance/ledger/offline/ (standard library and `cryptography` only);
see its __init__ for the bundle format and what is checked."""
from __future__ import annotations

import sys

from compliance.ledger.offline.checks import verify_bytes
from compliance.ledger.offline.parse import FORMAT, Malformed, encode_bundle, parse_bundle
from compliance.ledger.offline.pinned import PinnedKey, load_key_file
from compliance.ledger.offline.report import main, render
from compliance.ledger.offline.results import Check, Result

__all__ = ["FORMAT", "Check", "Malformed", "PinnedKey", "Result", "encode_bundle", "load_key_file", "main",
           "parse_bundle", "render", "verify_bytes"]

if __name__ == "__main__":
    sys.exit(main())
