"""Offline verifier for TraceLedger evidence bundles ("traceledger-evidence/v2") and
per-prediction receipts (c2sp.org/tlog-proof@v1).

    python -m compliance.verify_bundle BUNDLE [--key [PURPOSE=]PUBKEY ...] [--trust FILE] [--json]
    python -m compliance.verify_bundle RECEIPT.tlog-proof --trust FILE
    python -m compliance.ledger.offline BUNDLE ...      (the same)

Needs only the standard library and `cryptography`, plus pure modules of the trust core
(compliance.ledger: merkle, notes, dsse, purposes, keylog, trustfile); no Django, no database, no network.  It checks
every signature (the checkpoint note under the ledger key, witness cosignatures, each
engine's DSSE envelope under the build key), every digest, every link of each chain
(prediction → deployment → engine → build → ONNX model → commit → submitter), the
inclusion proof of every ledger entry against the signed checkpoint, that each record
equals the payload of its ledger entry, and a disclosed input against the prediction's
salted commitment.  One verdict per link; exit status 0 only when everything holds.

The bundle is one JSON document whose bytes must be exactly `encode_bundle()` of its
content (sorted keys, no insignificant whitespace, ASCII with \\u escapes, one final
newline): no byte of a bundle can change without verification failing.  Its fields:

  format            "traceledger-evidence/v2" (v1 bundles, not signed whole, are refused)
  scope             {kind: prediction, inference_id} | {kind: case, case_id, inference_id}
                    | {kind: service, service, since, until}
  checkpoint        {note}: the C2SP signed checkpoint note, with witness cosignatures
  keys              {ledger: [vkey], build: [base64 raw Ed25519 key], witness: [vkey]}
  predictions       [R] (prediction.recorded)
  deployments       [{deployment R, engine_manifest (the DSSE envelope text as pinned),
                      build R, build_started R, build_succeeded R, model R}]
  alerts, case_events    [R]
  key_events        [R]: every key entry below the checkpoint's size, which together must
                    reproduce the key-registry digest the checkpoint commits to
  signature         {key_id, sig}: a ledger key's Ed25519 signature over the rest
  disclosed_input   null | {inference_id, salt (hex), tensors: [{name, dtype, shape, data}]}

where R = {record: the entry's payload, entry: {index, body: the entry's exact canonical
JSON text, proof: [base64 RFC 9162 inclusion proof hashes at the checkpoint's size]}}.

--key [PURPOSE=]PUBKEY pins a trusted key for one purpose (repeat it for the ledger, build
and witness keys).  A PUBKEY file holds one of:
  * a C2SP verifier key line `name+hex8+base64(type || key)` (as published beside our
    checkpoints; the name must then match too), one or more lines;
  * a PEM "PUBLIC KEY" (SubjectPublicKeyInfo) Ed25519 key;
  * the raw 32-byte Ed25519 key in base64 (or 64 hex digits), one or more lines.
Its purpose (ledger, build or witness) comes from PURPOSE=, from a `purpose: build` line
in the file, or from the names `export_report --keys DIR` writes (ledger.vkey, build.pub,
witness.vkey); a key of no stated purpose is refused.  A key counts only for its purpose
(compliance.ledger.purposes): a checkpoint only under a pinned ledger key whose signature
line is named after the checkpoint's origin, an engine manifest only under a pinned build
key, a cosignature only under a pinned witness key.  A cosignature dated more than
MAX_CLOCK_SKEW_S (600 s) ahead of the verifier's clock is refused.
With --key, the checkpoint and every engine manifest must be signed by pinned keys.
Without it the keys carried in the bundle are used, and the verifier says so: that
proves integrity, not origin.

--trust FILE takes the auditor's trust file (compliance.ledger.trustfile) as the pinned
keys, each for its purpose; keys whose registration chains back to a pinned key count as
pinned, and the checkpoint must carry the file's witness quorum.

The package: `parse` (the canonical bytes and the document's fields), `pinned` (key
files), `results` (one verdict per link), `checks` (the Verifier, `verify_bytes`),
`disclosure` (a disclosed input), `completeness` (whole-bundle signature, complete key events,
trust file), `receipt` (tlog-proof receipts), `report` (the text verdict and the command line).
Nothing here imports Django.
"""
