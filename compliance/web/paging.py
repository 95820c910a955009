"""Keyset pagination: a page is "the next N rows after this key", so page 10,000 costs
what page 1 costs (an index range scan), unlike OFFSET.  Keys are ordered descending
(newest first); the cursor is the last row's key, signed (django.core.signing, with
its own salt) so that a client can pass it back but not forge one, and each value is
checked against its column's type and range before it reaches a query."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.core import signing
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models import Q

from compliance.lib.ids import parse_db_int

MAX_LIMIT = 500
_SIGNER = signing.Signer(salt="compliance.web.paging.cursor")
_BAD = "malformed cursor: pass the next_cursor of the previous page unchanged"
_INTEGER_FIELDS = {"AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField",
                   "SmallIntegerField", "PositiveIntegerField", "PositiveBigIntegerField", "PositiveSmallIntegerField"}


class CursorError(ValueError):
    pass


@dataclass
class Page:
    items: list
    next_cursor: str | None
    limit: int


def _encode(values: list) -> str:
    return _SIGNER.sign_object([v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, uuid.UUID)
                                else v for v in values])


def _decode(cursor: str, count: int) -> list:
    try:
        values = _SIGNER.unsign_object(cursor)
    except (signing.BadSignature, ValueError, TypeError):
        raise CursorError(_BAD) from None
    if not isinstance(values, list) or len(values) != count:
        raise CursorError(_BAD)
    return values


def _typed(model, key: str, value):
    """The cursor value for column `key`, of that column's Python type; CursorError otherwise."""
    try:
        field = model._meta.get_field(key)
        kind = (field.target_field if field.is_relation else field).get_internal_type()
    except (FieldDoesNotExist, AttributeError):
        kind = ""
    try:
        if kind in _INTEGER_FIELDS:
            if type(value) is not int:
                raise CursorError(_BAD)
            return parse_db_int(value, "cursor")
        if type(value) is not str or len(value) > 200:
            raise CursorError(_BAD)
        if kind == "DateTimeField":
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                raise CursorError(_BAD)
            return moment
        if kind == "UUIDField":
            return uuid.UUID(value)
        return value
    except (ValueError, TypeError, OverflowError):
        raise CursorError(_BAD) from None


def parse_limit(value, default: int = 50) -> int:
    if value in (None, ""):
        return default
    try:
        limit = parse_db_int(value, "limit")
    except ValueError as exc:
        raise CursorError(str(exc)) from None
    return min(max(limit, 1), MAX_LIMIT)


def keyset_page(query, keys: tuple[str, ...], *, cursor: str | None = None, limit: int = 50) -> Page:
    """Rows of `query` ordered by `keys` descending, after `cursor`."""
    query = query.order_by(*[f"-{k}" for k in keys])
    try:
        if cursor:
            values = [_typed(query.model, key, value) for key, value in zip(keys, _decode(cursor, len(keys)))]
            condition = Q()
            for i, key in enumerate(keys):
                step = Q(**{f"{key}__lt": values[i]})
                for prev, value in zip(keys[:i], values[:i]):
                    step &= Q(**{prev: value})
                condition |= step
            query = query.filter(condition)
        rows = list(query[: limit + 1])
    except (ValueError, TypeError, OverflowError, ValidationError):
        raise CursorError(_BAD) from None
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
