"""Dashboard reads from a PostgreSQL replica (`DATABASE_REPLICA_URL`), writes never.

Only the reads of a GET or HEAD request go to the replica, and only for our own tables
(`compliance`, `lineage`): sessions, users and sign-in throttling stay on the primary, so
a sign-in is never lost to replication lag. Everything else (POSTs, the API's writes,
Celery tasks, management commands, the ledger's appends and verification) reads and
writes the primary. Without `DATABASE_REPLICA_URL` neither the router nor the middleware
is installed.
"""
from __future__ import annotations

from contextvars import ContextVar

REPLICA = "replica"
REPLICA_APPS = frozenset({"compliance", "lineage"})
_reads_may_lag: ContextVar[bool] = ContextVar("traceledger_reads_may_lag", default=False)


class ReplicaRouter:
    def db_for_read(self, model, **hints):
        if _reads_may_lag.get() and model._meta.app_label in REPLICA_APPS:
            return REPLICA
        return None

    def db_for_write(self, model, **hints):
        return "default"

    def allow_relation(self, obj1, obj2, **hints):
        return True  # the replica holds the same rows as the primary

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db != REPLICA


def replica_reads(get_response):
    """Middleware: a page view (GET/HEAD) may read our tables from the replica."""

    def middleware(request):
        if request.method not in ("GET", "HEAD"):
            return get_response(request)
        token = _reads_may_lag.set(True)
        try:
            return get_response(request)
        finally:
            _reads_may_lag.reset(token)

    return middleware
