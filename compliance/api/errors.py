"""One JSON error shape for the whole API: {"error": "<one line>", "detail": {...}}."""
from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApiError(Exception):
    def __init__(self, message: str, status_code: int = 400, detail: dict | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail or {}


def _first_message(data) -> str:
    if isinstance(data, dict):
        for key, value in data.items():
            inner = _first_message(value)
            return inner if key in ("detail", "non_field_errors") else f"{key}: {inner}"
    if isinstance(data, list) and data:
        return _first_message(data[0])
    return str(data)


def _raised_by_parser(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(("rest_framework/parsers.py", "json/decoder.py")):
            return True
        tb = tb.tb_next
    return False


def exception_handler(exc, context):
    if isinstance(exc, ApiError):
        return Response({"error": str(exc), "detail": exc.detail}, status=exc.status_code)
    if isinstance(exc, RecursionError) and _raised_by_parser(exc):
        # json gave up on a body nested past Python's recursion limit; DRF catches only ValueError
        return Response({"error": "the JSON body nests too deeply", "detail": {}}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DjangoValidationError):
        return Response({"error": "; ".join(exc.messages)}, status=status.HTTP_400_BAD_REQUEST)
    response = drf_exception_handler(exc, context)
    if response is not None:
        response.data = {"error": _first_message(response.data), "detail": response.data}
    return response
