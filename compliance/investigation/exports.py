"""Exporting a regulator report: one action for the CLI and the dashboard.

`do_export_report` collects the evidence, renders the bundle and/or the PDF, and records
a `report.exported` ledger entry naming who exported what, with the digest of every
file produced.  Files are written by the caller (`write_atomically`) after the entry.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction

from compliance.investigation.disclosure import do_attempt_disclosure
from compliance.investigation.evidence import Evidence, Scope, collect
from compliance.investigation.reports import build_context, render_pdf
from compliance.ledger import ledger
from compliance.lib import npz
from lineage.models import Prediction


@dataclass
class Export:
    evidence: Evidence
    files: dict[str, bytes] = field(default_factory=dict)  # "pdf" / "bundle" -> bytes
    ledger_index: int | None = None

    def digests(self) -> dict[str, dict]:
        return {kind: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                for kind, data in self.files.items()}


def do_export_report(scope: Scope, *, acting_user: str, pdf: bool = True, bundle: bool = True,
                     disclose: dict | None = None, discloser=None, bundle_name: str = "",
                     max_predictions: int = 1000, progress=None) -> Export:
    """Produce the requested files for `scope` and record the export in the ledger.
    `disclose` is the data subject's input (name → array): `discloser` (a user holding
    the discloser role) attempts to open the commitment with it, a recorded and
    rate-limited act (compliance.investigation.disclosure).  `progress(done, total)`
    is told the predictions proved so far (evidence.collect)."""
    if not pdf and not bundle:
        raise ValueError("nothing to export: ask for a PDF, a bundle or both")
    if disclose is not None and scope.kind == "service":
        raise ValueError("an input can only be disclosed for one prediction or case")
    if disclose is not None and not bundle:
        raise ValueError("a disclosed input goes into the evidence bundle: ask for the bundle")
    disclosed = None
    if disclose is not None:
        prediction = Prediction.objects.get(inference_id=scope.inference_id)
        disclosed = do_attempt_disclosure(prediction, disclose, user=discloser)
    evidence = collect(scope, max_predictions=max_predictions, progress=progress)
    evidence.disclosed = disclosed
    export = Export(evidence)
    bundle_bytes = evidence.bundle_bytes()
    if bundle:
        export.files["bundle"] = bundle_bytes
    if pdf:
        context = build_context(evidence, bundle_bytes, generated_by=acting_user,
                                bundle_name=bundle_name if bundle else "")
        export.files["pdf"] = render_pdf(context)
    with transaction.atomic():
        entry = ledger.append("report.exported", {
            "scope": scope.to_dict(),
            "files": export.digests(),
            "checkpoint": {"size": evidence.checkpoint.size, "root_hash": evidence.checkpoint.root_hash},
            "predictions": len(evidence.predictions),
            "disclosed_input": evidence.disclosed is not None,
        }, subject=scope.subject, actor=acting_user)
    export.ledger_index = entry.index
    return export


MAX_DISCLOSED_BYTES = 16 * 1024 * 1024


def load_npz(source) -> dict:
    """Named arrays from an .npz file (a path or an uploaded file); no pickles, and every
    array's declared size checked before it is unpacked (compliance.lib.npz)."""
    size = getattr(source, "size", None)
    if size is None and isinstance(source, (str, os.PathLike)) and os.path.exists(source):
        size = os.path.getsize(source)
    if size is not None and size > MAX_DISCLOSED_BYTES:
        raise ValueError(f"the disclosed input is larger than {MAX_DISCLOSED_BYTES} bytes")
    if hasattr(source, "seek"):
        source.seek(0)
    try:
        return npz.load(source)
    except npz.NpzRefused as exc:
        raise ValueError(f"cannot read the disclosed input: {exc}") from None


def private_directory_problem(path: str | os.PathLike) -> str:
    """Why the directory of `path` may not hold personal data (a disclosed input and its
    salt): it must be the caller's own and closed to others (0700); "" when it is."""
    directory = Path(path).resolve().parent
    st = directory.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        return (f"{directory} is open to other users (mode {st.st_mode & 0o777:o}); a bundle with a disclosed input "
                f"goes into a directory only you can read: mkdir -m 700 DIR")
    return ""


def write_atomically(path: str | os.PathLike, data: bytes, mode: int = 0o600) -> None:
    """Write a file whole or not at all (temp file beside it, fsync, rename), readable
    by its owner only unless `mode` says otherwise: reports and bundles hold personal
    data."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
