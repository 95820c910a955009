"""Per-user rate limits for expensive work a reader can start (issue 22: a service-window
PDF costs seconds of CPU and appends a ledger entry).  A fixed window counted in Django's
cache: set TRACELEDGER_CACHE_URL to a shared Redis so that every web process counts
together (the embedded default runs one process, whose memory cache is enough)."""
from __future__ import annotations

import time

from django.core.cache import cache


def _now() -> float:
    return time.time()


def take(action: str, who: str, *, limit: int, window_s: int) -> int | None:
    """Count one `action` by `who`; None when it is allowed, else the seconds until the
    current window ends (the caller answers 429 with Retry-After)."""
    now = int(_now())
    window = now // window_s
    key = f"traceledger:throttle:{action}:{who}:{window}"
    cache.add(key, 0, timeout=window_s + 5)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window_s + 5)
        count = 1
    if count > limit:
        return max(1, (window + 1) * window_s - now)
    return None
