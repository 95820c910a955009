"""Login throttling with django-axes: the backend that checks for a lockout, the page a
locked-out sign-in gets (429), and the record of a lockout — an `auth.locked_out`
ledger entry and an alert, one per username per TRACELEDGER_ALERT_AGGREGATE_S
however many times the locked-out pair tries again (the alert counts them)."""
from __future__ import annotations

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.db import transaction
from django.shortcuts import render

from compliance.investigation.access import raise_or_count, record_access
from compliance.ledger import ledger


class LoginThrottleBackend(AxesStandaloneBackend):
    """Refuses every sign-in of a locked-out username/address pair, right password or not.
    A call without a request is no HTTP sign-in (a shell, the test client): nothing to throttle."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def lockout_message() -> str:
    hours = settings.AXES_COOLOFF_TIME
    return (f"Too many failed sign-ins for this account from your address: sign-in is locked for "
            f"{hours:g} hour{'s' if hours != 1 else ''}. Ask an administrator to unlock it sooner.")


def lockout_response(request, credentials, *args, **kwargs):
    form = AuthenticationForm(request)
    return render(request, "registration/login.html", {"form": form, "lockout": lockout_message()}, status=429)


def on_user_locked_out(sender, *, request=None, username=None, ip_address=None, **_):
    username = str(username or "")[:150]
    record_access(username or "anonymous", "login", f"user:{username}", outcome="locked_out",
                  detail=f"from {ip_address}")
    with transaction.atomic():
        alert = raise_or_count("auth.locked_out", f"sign-in locked for {username!r} after repeated failures",
                               severity="warning", subject=f"user:{username}"[:128],
                               details={"username": username, "ip_address": ip_address})
        if alert.details.get("count") == 1:
            ledger.append("auth.locked_out", {"username": username, "alert_id": alert.id,
                                              "failure_limit": settings.AXES_FAILURE_LIMIT,
                                              "cooloff_hours": str(settings.AXES_COOLOFF_TIME)},
                          subject=f"user:{username}", actor=username or "anonymous")
