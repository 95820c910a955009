"""Refuse an API request whose declared body is over TRACELEDGER_MAX_REQUEST_BYTES before
anything reads it, in the API's JSON error shape (Django's own guard, which pages get,
answers with a bare 400 page)."""
from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse


def api_body_limit(get_response):
    def middleware(request):
        if request.path.startswith("/api/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return JsonResponse({"error": "the Content-Length header is not a number", "detail": {}}, status=400)
            limit = settings.TRACELEDGER_MAX_REQUEST_BYTES
            if length > limit:
                return JsonResponse({"error": f"the request body has {length} bytes, more than the {limit} byte limit",
                                     "detail": {}}, status=413)
        return get_response(request)

    return middleware
