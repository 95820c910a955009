"""Per request: an id and the user for every log line (compliance.lib.logcontext), one
access log line, and the request counters of /metrics.

The id is the caller's X-Request-ID when a front server set a sane one (so its logs and
ours join up), else a new one; the response carries it back. Sign-ins, sign-outs and
refused sign-ins are logged too, under traceledger.security.
"""
from __future__ import annotations

import logging
import re
import time
import uuid

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from compliance.lib import logcontext
from compliance.web import metrics

access_log = logging.getLogger("traceledger.request")
security_log = logging.getLogger("traceledger.security")
_GIVEN_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


def request_id_for(request) -> str:
    given = request.headers.get("X-Request-ID", "")
    return given if _GIVEN_ID.match(given) else uuid.uuid4().hex


def _username(request) -> str:
    user = getattr(request, "user", None)
    return user.get_username() if user is not None and user.is_authenticated else "-"


class RequestContextMiddleware:
    """After AuthenticationMiddleware, so that the user is known."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = request_id_for(request)
        id_token = logcontext.request_id.set(request.request_id)
        user_token = logcontext.user.set(_username(request))
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            logcontext.user.set(_username(request))  # a sign-in or sign-out during the request
            elapsed = time.perf_counter() - started
            view = getattr(request.resolver_match, "url_name", None) or "unmatched"
            metrics.observe_request(request.method, view, response.status_code, elapsed)
            access_log.info("%s %s %s", request.method, request.path, response.status_code, extra={
                "method": request.method, "path": request.path, "status": response.status_code,
                "view": view, "duration_ms": round(elapsed * 1000, 1)})
            response["X-Request-ID"] = request.request_id
            return response
        finally:
            logcontext.user.reset(user_token)
            logcontext.request_id.reset(id_token)


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs):
    logcontext.user.set(user.get_username())
    security_log.info("signed in", extra={"event": "login"})


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs):
    security_log.info("signed out", extra={"event": "logout"})


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    security_log.warning("sign-in refused", extra={"event": "login_failed",
                                                   "username": str(credentials.get("username", ""))[:150]})
