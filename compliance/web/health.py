"""/healthz and /readyz for load balancers and orchestrators.

/healthz (liveness): the process answers; it touches nothing, so a database outage never
gets healthy web processes restarted. /readyz (readiness): this process can serve now —
the database answers and has every migration applied, Redis answers (when configured), the
private keys this process signs with are readable (TRACELEDGER_READY_KEYS) and the
artifact store takes a write. Both are unauthenticated and answer before host checks and
the HTTPS redirect (a probe comes by IP over plain HTTP), so they say only a check's name
and "ok" or "fail": never a path, a host or an error text. The reason goes to the log.
"""
from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import HttpResponse

log = logging.getLogger("traceledger.health")
PATHS = {"/healthz": "live", "/readyz": "ready"}
_migrations_applied = False  # once applied they stay applied: checked until first seen


def check_database() -> None:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")


def check_migrations() -> None:
    global _migrations_applied
    if _migrations_applied:
        return
    from django.db.migrations.executor import MigrationExecutor

    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        raise RuntimeError("unapplied migrations")
    _migrations_applied = True


def check_redis() -> None:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def check_key(purpose: str) -> Callable[[], None]:
    def check() -> None:
        from compliance.ledger import keys

        keys.read_private_key(keys.key_path(purpose))  # also refuses a key file others can read
    return check


def check_store() -> None:
    store = Path(settings.TRACELEDGER_STORE_DIR)
    with tempfile.NamedTemporaryFile(dir=store, prefix=".ready-") as probe:
        probe.write(b"ready")
        probe.flush()


def readiness_checks() -> dict[str, Callable[[], None]]:
    checks = {"database": check_database, "migrations": check_migrations}
    if settings.REDIS_URL:
        checks["redis"] = check_redis
    for purpose in settings.TRACELEDGER_READY_KEYS:
        checks[f"key:{purpose}"] = check_key(purpose)
    checks["store"] = check_store
    return checks


def readiness() -> dict[str, str]:
    results = {}
    for name, check in readiness_checks().items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # any failure is "not ready"; its details stay in the log
            log.warning("readiness check %s failed: %s", name, exc)
            results[name] = "fail"
    return results


def _answer(status: str, checks: dict[str, str] | None = None) -> HttpResponse:
    body = {"status": status} | ({"checks": checks} if checks is not None else {})
    response = HttpResponse(json.dumps(body), status=200 if status == "ok" else 503,
                            content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response


class HealthMiddleware:
    """First in MIDDLEWARE: answers the two probe paths itself, for GET and HEAD only."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        kind = PATHS.get(request.path_info)
        if kind is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            response = HttpResponse("use GET\n", status=405, content_type="text/plain")
            response["Allow"] = "GET, HEAD"
            return response
        if kind == "live":
            return _answer("ok")
        checks = readiness()
        return _answer("ok" if all(v == "ok" for v in checks.values()) else "fail", checks)
