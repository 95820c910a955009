"""Who and which request a log line belongs to, for the JSON log lines of production.

The web middleware (compliance.web.observability) sets the request id and the user for
the length of a request; `RequestContextFilter`, named in the LOGGING setting, copies
them onto every record logged meanwhile, from any layer. Outside a request (workers,
commands) both are "-".
"""
from __future__ import annotations

import logging
from contextvars import ContextVar

request_id: ContextVar[str] = ContextVar("traceledger_request_id", default="-")
user: ContextVar[str] = ContextVar("traceledger_user", default="-")


class RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        if not hasattr(record, "user"):
            record.user = user.get()
        return True
