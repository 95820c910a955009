"""What each key may sign: the one rule every verifier applies (the app, the API,
`verify_ledger`, the witness and the offline verifier).

    ledger   checkpoints (C2SP signed notes named after the log's origin) and log entries
    build    engine manifests (DSSE envelopes around the build's in-toto Statement)
    witness  cosignatures on checkpoints (cosignature/v1, or an Ed25519 note signature)

A key signs only what its purpose allows, so a thief of the build key (which lives on
the build workers, the least trusted hosts) can sign engines and nothing else: a
checkpoint or cosignature made with it is refused everywhere.  A checkpoint counts only
when its signature line is named after the checkpoint's origin.  A pinned key whose
purpose is not known is refused, never guessed.

Pure module (standard library only): the offline verifier imports it.
"""
from __future__ import annotations

LEDGER, BUILD, WITNESS = "ledger", "build", "witness"
PURPOSES = (LEDGER, BUILD, WITNESS)

CHECKPOINT, LOG_ENTRY, ENGINE_MANIFEST, COSIGNATURE = "checkpoint", "log entry", "engine manifest", "cosignature"
SIGNS: dict[str, tuple[str, ...]] = {
    LEDGER: (CHECKPOINT, LOG_ENTRY),
    BUILD: (ENGINE_MANIFEST,),
    WITNESS: (COSIGNATURE,),
}

# Every key file `export_report --keys DIR` writes, and what a bare key in it is for.
KEY_FILE_PURPOSES = {"ledger.vkey": LEDGER, "build.pub": BUILD, "witness.vkey": WITNESS}


class PurposeError(ValueError):
    """A key used for something its purpose does not allow, or a key of no known purpose."""


def signer_of(artefact: str) -> str:
    """The one purpose whose keys may sign `artefact`."""
    for purpose, artefacts in SIGNS.items():
        if artefact in artefacts:
            return purpose
    raise PurposeError(f"nothing may sign a {artefact!r}")


def check_purpose(purpose: str | None) -> str:
    if purpose not in PURPOSES:
        raise PurposeError(f"key purpose {purpose!r} is not one of {', '.join(PURPOSES)}: "
                           "a key is pinned only for a stated purpose")
    return purpose


def may_sign(purpose: str | None, artefact: str, *, key_name: str | None = None, origin: str | None = None) -> str:
    """Why a key of `purpose` (named `key_name` in its signature line) may not sign
    `artefact`; "" when it may.  For a checkpoint the signature line must carry the
    checkpoint's `origin` as its name."""
    if purpose not in PURPOSES:
        return f"a key of no stated purpose ({purpose!r}) signs nothing"
    allowed = signer_of(artefact)
    if purpose != allowed:
        return f"a {purpose} key may not sign a {artefact} (only a {allowed} key may)"
    if artefact == CHECKPOINT and (origin is None or key_name != origin):
        return f"a checkpoint of {origin!r} must be signed under its origin's name, not {key_name!r}"
    return ""


def require(purpose: str | None, artefact: str, *, key_name: str | None = None, origin: str | None = None) -> None:
    problem = may_sign(purpose, artefact, key_name=key_name, origin=origin)
    if problem:
        raise PurposeError(problem)
