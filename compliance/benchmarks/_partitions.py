"""The partitioning plan for `lineage_prediction`, measured (PostgreSQL only; called by
`bench dashboard` on its filled database).

The plan: range-partition the table on `inference_id`, one partition per day. UUIDv7
ids begin with their Unix milliseconds and PostgreSQL orders uuid bytewise, so id ranges
are time ranges: the primary key stays the partition key (idempotent ingest by id keeps
a global uniqueness guarantee) and the salt table's foreign key keeps working.  A query
over a time window adds the window's id range, `inference_id >= uuid7_floor(since)`, and
PostgreSQL prunes the partitions outside it.

This probe builds that table beside the real one (same rows, same indexes), then times
the dashboard's heavy queries on both, in the same run, with the same parameters:

- point: one prediction by inference id (the trace page's lookup)
- window: a service's newest 50 predictions of the last 6 hours (the trace search)
- hour: predictions per deployment in the current hour (the overview, every request)
- day: predictions per hour and deployment over 24 hours (the cold overview)

and reports p50/p95 for both and their ratio (partitioned / plain).  The shadow table is
dropped afterwards.
"""
from __future__ import annotations

import random
import statistics
import time
from datetime import datetime, timedelta, timezone

SHADOW = "bench_prediction_by_day"
COLUMNS = "inference_id, deployment_id, engine_sha256, timestamp, input_digest, output_digest, latency_us, " \
          "batch_id, batch_pos"


def uuid7_floor(moment: datetime) -> str:
    """The smallest UUIDv7 of `moment`'s millisecond: its time bits, then zeros."""
    h = f"{int(moment.timestamp() * 1000):012x}"
    return f"{h[:8]}-{h[8:12]}-0000-0000-000000000000"


def _build_shadow(cursor) -> int:
    cursor.execute(f"DROP TABLE IF EXISTS {SHADOW}")
    cursor.execute("SELECT min(timestamp), max(timestamp) FROM lineage_prediction")
    lo, hi = cursor.fetchone()
    cursor.execute(f"CREATE TABLE {SHADOW} (LIKE lineage_prediction INCLUDING DEFAULTS) "
                   f"PARTITION BY RANGE (inference_id)")
    day = lo.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    partitions = 0
    while day <= hi:
        cursor.execute(f"CREATE TABLE {SHADOW}_{day:%Y%m%d} PARTITION OF {SHADOW} "
                       f"FOR VALUES FROM ('{uuid7_floor(day)}') TO ('{uuid7_floor(day + timedelta(days=1))}')")
        partitions += 1
        day += timedelta(days=1)
    cursor.execute(f"CREATE TABLE {SHADOW}_default PARTITION OF {SHADOW} DEFAULT")
    cursor.execute(f"INSERT INTO {SHADOW} ({COLUMNS}) SELECT {COLUMNS} FROM lineage_prediction")
    # the real table's constraints and indexes, on the partitioned parent
    cursor.execute(f"ALTER TABLE {SHADOW} ADD PRIMARY KEY (inference_id)")
    cursor.execute(f"CREATE INDEX ON {SHADOW} (deployment_id, timestamp)")
    cursor.execute(f"CREATE INDEX ON {SHADOW} (timestamp, deployment_id)")
    cursor.execute(f"CREATE INDEX ON {SHADOW} (input_digest)")
    cursor.execute(f"ANALYZE {SHADOW}")
    return partitions + 1


def _queries(now: datetime, ids: list, deployments: list[int]):
    """(name, query with {t} for the table and {prune} for the partitioned one's id range,
    that range's condition, the query's parameters, the range's parameters)."""
    six = now - timedelta(hours=6)
    hour = now.replace(minute=0, second=0, microsecond=0)
    day = hour - timedelta(hours=23)
    window = ("SELECT inference_id, timestamp, latency_us FROM {t} WHERE deployment_id = %s AND timestamp >= %s"
              "{prune} ORDER BY timestamp DESC, inference_id DESC LIMIT 50")
    per_hour = ("SELECT deployment_id, count(*) FROM {t} WHERE timestamp >= %s{prune} GROUP BY deployment_id")
    per_day = ("SELECT date_trunc('hour', timestamp) AS h, deployment_id, count(*) FROM {t} "
               "WHERE timestamp >= %s AND timestamp < %s{prune} GROUP BY h, deployment_id")
    return [
        ("point", "SELECT * FROM {t} WHERE inference_id = %s", "", lambda: [random.choice(ids)], lambda: []),
        ("window", window, " AND inference_id >= %s",
         lambda: [random.choice(deployments), six], lambda: [uuid7_floor(six)]),
        ("hour", per_hour, " AND inference_id >= %s", lambda: [hour], lambda: [uuid7_floor(hour)]),
        ("day", per_day, " AND inference_id >= %s AND inference_id < %s", lambda: [day, hour],
         lambda: [uuid7_floor(day), uuid7_floor(hour)]),
    ]


def _time(cursor, sql: str, params, rounds: int) -> list[float]:
    cursor.execute(sql, params())  # warm
    cursor.fetchall()
    out = []
    for _ in range(rounds):
        p = params()
        started = time.perf_counter()
        cursor.execute(sql, p)
        cursor.fetchall()
        out.append((time.perf_counter() - started) * 1000)
    return sorted(out)


def _summary(samples: list[float]) -> dict:
    return {"p50_ms": round(statistics.median(samples), 2),
            "p95_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.95))], 2)}


def measure(connection, rounds: int = 30) -> dict:
    with connection.cursor() as cursor:
        started = time.perf_counter()
        partitions = _build_shadow(cursor)
        build_s = time.perf_counter() - started
        try:
            cursor.execute("SELECT inference_id FROM lineage_prediction TABLESAMPLE SYSTEM (1) LIMIT 500")
            ids = [row[0] for row in cursor.fetchall()]
            if not ids:  # a small table: 1 % of its pages can be none of them; sorting it is cheap then
                cursor.execute("SELECT inference_id FROM lineage_prediction ORDER BY random() LIMIT 500")
                ids = [row[0] for row in cursor.fetchall()]
            cursor.execute("SELECT DISTINCT deployment_id FROM lineage_prediction")
            deployments = [row[0] for row in cursor.fetchall()]
            now = datetime.now(timezone.utc)
            figures = {"partitions": partitions, "shadow_build_s": round(build_s, 1)}
            for name, sql, prune, params, more in _queries(now, ids, deployments):
                rng = random.getstate()
                plain = _time(cursor, sql.format(t="lineage_prediction", prune=""), params, rounds)
                random.setstate(rng)
                parted = _time(cursor, sql.format(t=SHADOW, prune=prune), lambda: params() + more(), rounds)
                a, b = _summary(plain), _summary(parted)
                figures[name] = {"plain": a, "partitioned": b,
                                 "p95_ratio": round(b["p95_ms"] / max(a["p95_ms"], 0.01), 2)}
            return figures
        finally:
            cursor.execute(f"DROP TABLE IF EXISTS {SHADOW}")
