"""The API's JSON parser: a body larger than TRACELEDGER_MAX_REQUEST_BYTES is refused
from its Content-Length before it is read, a body nested deeper than
TRACELEDGER_MAX_JSON_DEPTH is refused after parsing, and neither can raise a
RecursionError or a MemoryError into a 500."""
from __future__ import annotations

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from compliance.api.errors import ApiError


def too_deep(value, limit: int) -> bool:
    """True when `value` nests lists/objects deeper than `limit` (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def check_length(request) -> None:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ApiError("the Content-Length header is not a number") from None
    if length > settings.TRACELEDGER_MAX_REQUEST_BYTES:
        raise ApiError(f"the request body has {length} bytes, more than the "
                       f"{settings.TRACELEDGER_MAX_REQUEST_BYTES} byte limit", 413)


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        if request is not None:
            check_length(request)
        try:
            data = super().parse(stream, media_type, parser_context)
        except (RecursionError, MemoryError):
            raise ParseError("JSON parse error - the body is nested too deeply or too large") from None
        if too_deep(data, settings.TRACELEDGER_MAX_JSON_DEPTH):
            raise ParseError(f"JSON nested deeper than {settings.TRACELEDGER_MAX_JSON_DEPTH} levels")
        return data
