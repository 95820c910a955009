"""The trust core: everything a cryptography auditor needs to read, and nothing else.

- `ledger`: appending entries (RFC 8785 canonical JSON bodies, RFC 9162 leaves) under one
  head lock; `tree` stores the Merkle nodes, `merkle` is the pure RFC 9162 arithmetic;
  `bulk` is the COPY path both use; `dbguards` the append-only triggers.
- `notes`, `checkpoints`, `witness`: C2SP signed notes, signed checkpoints and cosigning.
- `keys`, `dsse`, `manifests`: signing keys by purpose, DSSE envelopes, engine manifests.
- `keylog` (pure), `keyevents`: key transparency — a key's state derived from the key
  entries, the key table held against them.
- `trustfile` (pure), `trustcheck`: the auditor's trust file, and the database held
  against it (`verify_ledger --trust`).
- `witnesses`, `remotewitness` (pure, runs on another host): witness policy, status and
  the witness process that needs only the published endpoints; `receipts`: per-prediction
  C2SP tlog-proofs.
- `proofs`, `verify`: inclusion/consistency proofs and full ledger verification.
- `offline/`: the regulator's verifier (standard library and `cryptography` only).

It imports nothing from lineage, inference or the rest of compliance (compliance.models
aside). It returns verdicts and raises exceptions; what needs a person's attention is
sent as `events.security_event`, which the investigation layer turns into alerts.
This package's __init__ imports nothing, so the offline verifier stays Django-free.
"""
