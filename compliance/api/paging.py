"""API pages: the dashboard's keyset paging (compliance.web.paging) with the API's
error shape: a bad cursor is a 400."""
from __future__ import annotations

from compliance.api.errors import ApiError
from compliance.web.paging import CursorError, keyset_page, parse_limit


def page_for_api(query, request, keys: tuple[str, ...] = ("id",), to_dict=lambda row: row.to_dict()) -> dict:
    """One API page: {"results": [...], "next_cursor": str | null}; a bad cursor is a 400."""
    try:
        page = keyset_page(query, keys, cursor=request.query_params.get("cursor"),
                           limit=parse_limit(request.query_params.get("limit")))
    except CursorError as exc:
        raise ApiError(str(exc)) from None
    return {"results": [to_dict(row) for row in page.items], "next_cursor": page.next_cursor}
