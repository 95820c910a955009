"""Where a form may send the browser back to: only a path on our own host (Django's
url_has_allowed_host_and_scheme), never `https://evil.example/` or `//evil.example`."""
from __future__ import annotations

from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme


def safe_next(request, default: str, *args, **kwargs):
    """Redirect to the request's `next` if it stays on this host, else to `default`
    (a URL name, resolved with args/kwargs)."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and "\x00" not in target and url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(target)
    return redirect(default, *args, **kwargs)
