"""Refuse text no field can hold, before any view sees it: a NUL byte or a lone UTF-16
surrogate in the path, a query value, a form field or a JSON string.

PostgreSQL refuses both in text columns (a DataError, so a 500 after the fact) and
UTF-8 cannot encode a lone surrogate at all, so the only safe answer is a 400 up front,
with the place named.  Raw bodies of other types (ONNX, .npz uploads) are not text and
pass untouched.
"""
from __future__ import annotations

import json
import re

from django.http import HttpResponse, JsonResponse

# Lone surrogates survive json.loads ("\ud800" is valid JSON); pairs become one
# astral character, so any surrogate code point left in a parsed string is a lone one.
BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
# Only a body holding one of these escapes can decode to a NUL or a surrogate: raw
# control characters are already invalid JSON.
SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


class BadInput(ValueError):
    pass


def _why(text: str) -> str:
    return "a NUL byte" if "\x00" in text else "a lone UTF-16 surrogate"


def _check_text(text: str, where: str) -> None:
    if BAD_TEXT.search(text):
        raise BadInput(f"{where} holds {_why(text)}, which no field accepts: send valid Unicode text")


def check_json(body: bytes) -> None:
    """Raise BadInput for a JSON document whose strings hold a NUL or a lone surrogate.
    Only a body with a suspect escape is parsed here (the common body costs one regex
    scan); a body that is not JSON is left to the parser's own 400."""
    if not SUSPECT_ESCAPE.search(body):
        return
    try:
        document = json.loads(body)
    except RecursionError:
        raise BadInput("the JSON body nests too deeply") from None
    except ValueError:
        return
    stack = [(document, "$")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            _check_text(value, f"the JSON string at {where}")
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, f"a JSON key in {where}")
                stack.append((item, f"{where}.{key}"))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(value))


def check_request(request) -> None:
    if "\x00" in request.path_info:
        raise BadInput("the path holds a NUL byte, which no resource name contains")
    for key, values in request.GET.lists():
        _check_text(key, "a query parameter name")
        for value in values:
            _check_text(value, f"the query parameter {key!r}")
    if request.method not in ("POST", "PUT", "PATCH", "DELETE"):
        return
    content_type = request.content_type or ""
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for key, values in request.POST.lists():
            _check_text(key, "a form field name")
            for value in values:
                _check_text(value, f"the form field {key!r}")
    elif content_type == "application/json" or content_type.endswith("+json"):
        check_json(request.body)


class InputGuardMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            check_request(request)
        except BadInput as exc:
            if request.path_info.startswith("/api/"):
                return JsonResponse({"error": str(exc), "detail": {}}, status=400)
            return HttpResponse(f"Bad request: {exc}.\n", status=400, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
