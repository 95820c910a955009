"""What the trust core reports upward. The core decides verdicts; it does not decide who
is told or how. A check that finds something a person must look at (a ledger that no
longer verifies, a witness that saw a fork, an engine refused) sends `security_event`,
and the investigation layer above (compliance.investigation.alerts) turns it into an Alert with its
ledger entry and notifications. Receivers run synchronously, inside the sender's
transaction, exactly as a direct call would.

Arguments: kind (the alert kind, e.g. "ledger.verification_failed"), message, severity
("info", "warning", "critical"), subject, details (a JSON-able dict), and
store_alone_on_failure: when the ledger itself may be too damaged to take an entry, the
alert must still exist without one.
"""
from __future__ import annotations

from django.dispatch import Signal

security_event = Signal()


def report(kind: str, message: str, *, severity: str = "warning", subject: str = "", details: dict | None = None,
           store_alone_on_failure: bool = False, sender: object = None) -> None:
    """Send one security event; raises what a receiver raised (as a direct call would)."""
    security_event.send(sender=sender, kind=kind, message=message, severity=severity, subject=subject,
                        details=details or {}, store_alone_on_failure=store_alone_on_failure)
