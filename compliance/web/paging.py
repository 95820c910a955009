"""Keyset pagination: a page is "the next N rows after this key", so page 10,000 costs
what page 1 costs (an index range scan), unlike OFFSET.  Keys are ordered descending
(newest first); the cursor is an opaque, URL-safe encoding of the last row's key."""
from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db.models import Q

MAX_LIMIT = 500


class CursorError(ValueError):
    pass


@dataclass
class Page:
    items: list
    next_cursor: str | None
    limit: int


def _encode(values: list) -> str:
    text = json.dumps([v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, uuid.UUID) else v
                       for v in values])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(cursor: str, count: int) -> list:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        raise CursorError("malformed cursor: pass the next_cursor of the previous page unchanged") from None
    if not isinstance(values, list) or len(values) != count:
        raise CursorError("malformed cursor: pass the next_cursor of the previous page unchanged")
    return values


def parse_limit(value, default: int = 50) -> int:
    if value in (None, ""):
        return default
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise CursorError("limit must be an integer") from None
    return min(max(limit, 1), MAX_LIMIT)


def keyset_page(query, keys: tuple[str, ...], *, cursor: str | None = None, limit: int = 50) -> Page:
    """Rows of `query` ordered by `keys` descending, after `cursor`."""
    query = query.order_by(*[f"-{k}" for k in keys])
    if cursor:
        values = _decode(cursor, len(keys))
        condition = Q()
        for i, key in enumerate(keys):
            step = Q(**{f"{key}__lt": values[i]})
            for prev, value in zip(keys[:i], values[:i]):
                step &= Q(**{prev: value})
            condition |= step
        query = query.filter(condition)
    try:
        rows = list(query[: limit + 1])
    except (ValueError, TypeError, ValidationError):
        raise CursorError("malformed cursor: pass the next_cursor of the previous page unchanged") from None
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = _encode([_key_value(rows[-1], k) for k in keys])
    return Page(rows, next_cursor, limit)


def _key_value(row, key: str):
    value = row
    for part in key.split("__"):
        value = getattr(value, part)
    return value


def page_for_view(request, query, keys: tuple[str, ...]) -> Page:
    """A dashboard page's rows: a bad cursor shows a message and the first page."""
    from django.contrib import messages

    try:
        return keyset_page(query, keys, cursor=request.GET.get("cursor"), limit=parse_limit(request.GET.get("limit")))
    except CursorError as exc:
        messages.error(request, str(exc))
        return keyset_page(query, keys, limit=parse_limit(None))
