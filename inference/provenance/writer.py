"""Making provenance durable: Prediction rows, their salts (outside the ledger) and one
`prediction.recorded` ledger leaf each, written together in one transaction.

`write_records` is the one writer (the recorders, the shipper and the ingestion API
call it).  It is idempotent by inference id and race-free: the primary keys refuse a
record stored before, and the batch is then written again with the stored ids looked
up under the ledger head lock, so two writers replaying the same records (a restarted
recorder and a late API retry, say) never both insert them.  On PostgreSQL the rows
go in with COPY; on SQLite with bulk_create.

Order of a write on PostgreSQL: the batch's Prediction rows (referring to a batch id
drawn for them, by position) and their salts, and only then the ledger head lock, the
entries and the PredictionBatch row that places them.  Everything before the lock runs
while other writers hold it; only the entries queue behind each other.

`DatabaseSink` is the writer as a spool sink (on a shipper thread or in a shipper
child process).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime

from django.db import DatabaseError, DataError, IntegrityError, connection, transaction

from compliance.ledger import ledger
from compliance.ledger.bulk import copy_lines
from compliance.ledger.canonical import canonical_json
from compliance.lib.ids import datetime_from_us
from inference.provenance.spool import Rejected
from inference.provenance.stamp import ProvenanceRecord, iso_from_us
from lineage.models import Prediction, PredictionBatch, PredictionHour, PredictionSalt

log = logging.getLogger("traceledger.recorder")

__all__ = ["ProvenanceRecord", "write_records", "write_prepared", "prepare", "prepare_spooled", "WriteResult",
           "DatabaseSink"]

# A Prediction COPY line up to its batch; deployment ids stay below 2**53
# (RFC 8785's integer range).  The output digest is a salted "v2:" commitment, or a
# legacy plain hash from a spool written before (inference.digests).
_ROW = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\t[0-9]{1,15}\t[0-9a-f]{64}\t"
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z\t[0-9a-f]{64}\t(?:v2:)?[0-9a-f]{64}\t"
    r"(?:[0-9]{1,10}|\\N)\t"
)
_SALT = re.compile(r"(?:[0-9a-f]{64})?")
_NULL = "\\N"
_PREDICTION_FIELDS = ("inference_id", "deployment", "engine_sha256", "timestamp", "input_digest", "output_digest",
                      "latency_us", "batch", "batch_pos")


@dataclass
class WriteResult:
    stored: int = 0
    duplicates: list[str] = field(default_factory=list)


class Prepared:
    """A batch checked and formatted outside the transaction (no database access), by
    `prepare` from records or by `prepare_spooled` straight from spool lines: `ids`
    unique (later repeats are in `duplicates`); per id, `rows` its Prediction COPY line
    up to the batch columns, `salts` its salt line, `entries` its ledger entry but for
    the index, as (subject, time, body text after the index), so that the only
    rendering left for the head lock is the index.  `records` are the records (None
    when prepared from spool lines, which only the PostgreSQL path does)."""

    __slots__ = ("ids", "rows", "salts", "entries", "duplicates", "records")

    def __init__(self, ids, rows, salts, entries, duplicates, records=None):
        self.ids, self.rows, self.salts, self.entries = ids, rows, salts, entries
        self.duplicates, self.records = duplicates, records

    def without(self, stored: set[str]) -> "Prepared":
        keep = [i for i, inference_id in enumerate(self.ids) if inference_id not in stored]
        return Prepared([self.ids[i] for i in keep], [self.rows[i] for i in keep], [self.salts[i] for i in keep],
                        [self.entries[i] for i in keep], [],
                        None if self.records is None else [self.records[i] for i in keep])


def _formatted(inference_id: str, deployment_id, engine_sha256: str, ts: str, input_digest: str,
               output_digest: str, latency: str, salt: str) -> tuple[str, str, tuple[str, str, str]]:
    """One prediction's Prediction COPY line (up to the batch columns), salt COPY line
    ("" without a salt) and `prediction.recorded` entry as (subject, time, the body
    after its index; see entry_renderer), for prepare() and prepare_spooled() alike."""
    subject = f"prediction:{inference_id}"
    return (
        f"{inference_id}\t{deployment_id}\t{engine_sha256}\t{ts}\t{input_digest}\t{output_digest}\t{latency}\t",
        f"{inference_id}\t{salt}\n" if salt else "",
        (subject, ts,
         f',"kind":"prediction.recorded","payload":{{"deployment_id":{deployment_id},'
         f'"engine_sha256":"{engine_sha256}","inference_id":"{inference_id}","input_digest":"{input_digest}",'
         f'"output_digest":"{output_digest}","timestamp":"{ts}"}},"subject":"{subject}","time":"{ts}"}}'))


def prepare(records: list[ProvenanceRecord]) -> Prepared:
    """Raises ValueError naming the first malformed record."""
    unique: dict[str, ProvenanceRecord] = {}
    duplicates: list[str] = []
    for r in records:
        if r.id in unique:
            duplicates.append(r.id)
        else:
            unique[r.id] = r
    rows, salts, entries = [], [], []
    for r in unique.values():
        # the pattern doubles as validation: nothing in a COPY line can be a tab,
        # newline or backslash, and the ledger body template needs nothing escaped
        row, salt, entry = _formatted(r.id, r.deployment_id, r.engine_sha256, iso_from_us(r.ts_us), r.input_digest,
                                      r.output_digest, _NULL if r.latency_us is None else str(r.latency_us), r.salt)
        if _ROW.fullmatch(row) is None or _SALT.fullmatch(r.salt) is None:
            raise ValueError(f"malformed provenance record {r.id!r}")
        rows.append(row)
        salts.append(salt)
        entries.append(entry)
    fresh = list(unique.values())
    return Prepared([r.id for r in fresh], rows, salts, entries, duplicates, fresh)


# One spool line (ProvenanceRecord.encode) in the exact form prepare() would make of it:
# numbers without leading zeros, so that the text is also their canonical JSON.
_SPOOLED_LINE = (
    r"1,[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12},(?:0|[1-9][0-9]{0,14}),[0-9a-f]{64},"
    r"(?:0|[1-9][0-9]{0,15}),[0-9a-f]{64},(?:v2:)?[0-9a-f]{64},(?:0|[1-9][0-9]{0,9})?,(?:[0-9a-f]{64})?"
)
_SPOOLED = re.compile(f"(?:{_SPOOLED_LINE}\n)*{_SPOOLED_LINE}")


def prepare_spooled(lines: list[bytes]) -> Prepared | None:
    """`prepare(decoded records)` straight from spool lines, with no record objects:
    the batch is checked by one pattern over all of it and each line split once.
    None when any line is not in the exact form (say a repeated id or an old
    encoding): decode and prepare() it then, which names what is wrong."""
    if not lines:
        return None
    try:
        text = b"\n".join(lines).decode("ascii")
    except UnicodeDecodeError:
        return None
    if _SPOOLED.fullmatch(text) is None:
        return None
    ids, rows, salts, entries = [], [], [], []
    for line in text.split("\n"):
        _, inference_id, deployment_id, engine, ts_us, input_digest, output_digest, latency, salt = line.split(",")
        row, salt_line, entry = _formatted(inference_id, deployment_id, engine, iso_from_us(int(ts_us)),
                                           input_digest, output_digest, latency or _NULL, salt)
        ids.append(inference_id)
        rows.append(row)
        salts.append(salt_line)
        entries.append(entry)
    if len(set(ids)) != len(ids):
        return None
    return Prepared(ids, rows, salts, entries, [])


def _existing_ids(ids: list[str]) -> set[str]:
    if not ids:
        return set()
    if connection.vendor == "postgresql":
        # one text parameter, split by the server: adapting a Python list of ids as
        # an array costs more than the query itself
        with connection.cursor() as cursor:
            cursor.execute(
                f'SELECT "inference_id" FROM "{Prediction._meta.db_table}" '
                f"WHERE \"inference_id\" = ANY(string_to_array(%s, ',')::uuid[])", [",".join(ids)])
            return {str(row[0]) for row in cursor.fetchall()}
    found: set[str] = set()
    for start in range(0, len(ids), 900):
        found.update(str(u) for u in Prediction.objects.filter(
            inference_id__in=ids[start:start + 900]).values_list("inference_id", flat=True))
    return found


def write_records(records: list[ProvenanceRecord], *, actor: str = "inference") -> WriteResult:
    """Make records durable in one transaction with their ledger leaves; records
    already stored (same inference id, here or earlier in the list) are skipped and
    reported as duplicates. Raises ValueError for a malformed record (nothing stored)."""
    return write_prepared(prepare(records), actor=actor)


def write_prepared(batch: Prepared, *, actor: str = "inference") -> WriteResult:
    if not batch.ids:
        return WriteResult(0, list(batch.duplicates))
    try:
        # Optimistic: fresh records are the rule, and the primary keys refuse a record
        # stored before; that costs a rollback once in a replay instead of a lookup of
        # every id in every batch.
        return _write(batch, actor, check=False)
    except IntegrityError:
        return _write(batch, actor, check=True)


def _write(batch: Prepared, actor: str, check: bool) -> WriteResult:
    duplicates = list(batch.duplicates)
    with transaction.atomic():
        if check:
            # look the ids up and store the rest with no writer in between
            ledger.hold_head()
            existing = _existing_ids(batch.ids)
            if existing:
                duplicates.extend(i for i in batch.ids if i in existing)
                batch = batch.without(existing)
                if not batch.ids:
                    return WriteResult(0, duplicates)
        size = len(batch.ids)
        render = entry_renderer(actor)
        if connection.vendor == "postgresql":
            # Optimistically (not checking) the rows go in before the head lock,
            # referring to a batch id drawn for them; the batch row follows the entries.
            batch_id = _next_batch_id()
            _check_keys_now()
            copy_lines(Prediction, _PREDICTION_FIELDS,
                       (f"{row}{batch_id}\t{pos}\n" for pos, row in enumerate(batch.rows)))
            copy_lines(PredictionSalt, ("inference_id", "salt"), (s for s in batch.salts if s))
            first = ledger.append_rendered("prediction.recorded", batch.entries, render)
            PredictionBatch.objects.create(id=batch_id, first_index=first, size=size)
        else:  # SQLite runs one writer at a time anyway
            first = ledger.append_rendered("prediction.recorded", batch.entries, render)
            _create_rows(batch.records, PredictionBatch.objects.create(first_index=first, size=size))
        _count_hours(batch)
    return WriteResult(size, duplicates)


def _count_hours(batch: Prepared) -> None:
    """Add the batch to PredictionHour.  Under the ledger head lock, which every writer
    takes before this (and holds to its commit): the counters' row locks are then always
    taken in the same order, and two writers never wait on each other for them."""
    counts: dict[tuple[str, str], int] = {}
    for row, (_, ts, _) in zip(batch.rows, batch.entries):
        key = (ts[:13], row.split("\t", 2)[1])  # "YYYY-MM-DDTHH", deployment id
        counts[key] = counts.get(key, 0) + 1
    adapt = connection.ops.adapt_datetimefield_value
    params: list = []
    for (hour, deployment_id), n in counts.items():
        params += [adapt(datetime.fromisoformat(f"{hour}:00:00+00:00")), int(deployment_id), n]
    table = PredictionHour._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f'INSERT INTO "{table}" ("hour", "deployment_id", "n") VALUES '
                       f'{", ".join(["(%s, %s, %s)"] * len(counts))} ON CONFLICT ("hour", "deployment_id") '
                       f'DO UPDATE SET "n" = "{table}"."n" + excluded."n"', params)


def _next_batch_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [PredictionBatch._meta.db_table])
        return cursor.fetchone()[0]


_SET_IMMEDIATE: dict[str, str] = {}  # database alias -> SET CONSTRAINTS statement


def _check_keys_now() -> None:
    """Check the prediction rows' foreign key (the deployment) as they go in rather
    than at commit, where Django's PostgreSQL constraints are deferred to: the commit
    happens with the head lock held, and a batch's key checks there would be time that
    every other writer waits through.  Only these constraints: an enclosing transaction
    keeps its own deferred checks."""
    sql = _SET_IMMEDIATE.get(connection.alias)
    if sql is None:
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, Prediction._meta.db_table)
        names = sorted(name for name, c in constraints.items() if c["foreign_key"])
        quote = connection.ops.quote_name
        sql = f"SET CONSTRAINTS {', '.join(quote(n) for n in names)} IMMEDIATE" if names else ""
        _SET_IMMEDIATE[connection.alias] = sql
    if sql:
        with connection.cursor() as cursor:
            cursor.execute(sql)


def entry_renderer(actor: str):
    """`render(index, entry)` for ledger.append_rendered, over the entries of a
    Prepared batch: (subject, time, body), the body written straight from a template.
    It is the RFC 8785 form of entry_body(index, Event("prediction.recorded",
    record.ledger_payload(), ...)) because every field it interpolates has already
    passed prepare() or prepare_spooled() (hex, UUID text, an integer below 2**53
    without leading zeros, ISO time: nothing JSON escapes) and the keys are written in
    sorted order; tests hold the two equal."""
    head = f'{{"actor":{canonical_json(actor).decode()},"index":'

    def render(index: int, entry: tuple[str, str, str]) -> tuple[str, str, str]:
        subject, when, tail = entry
        return subject, when, f"{head}{index}{tail}"

    return render


def _create_rows(fresh: list[ProvenanceRecord], placed: PredictionBatch) -> None:
    Prediction.objects.bulk_create([
        Prediction(inference_id=r.id, deployment_id=r.deployment_id, engine_sha256=r.engine_sha256,
                   timestamp=datetime_from_us(r.ts_us), input_digest=r.input_digest, output_digest=r.output_digest,
                   latency_us=r.latency_us, batch=placed, batch_pos=pos)
        for pos, r in enumerate(fresh)
    ], batch_size=2000)
    PredictionSalt.objects.bulk_create(
        [PredictionSalt(inference_id=r.id, salt=r.salt) for r in fresh if r.salt], batch_size=2000)


class DatabaseSink:
    """Delivers spooled records with write_records, on the shipper thread's own
    database connection; an outage (any database error but a refused record) is
    retried by the recorder, a refused record is isolated and set aside."""

    def __init__(self, actor: str = "inference"):
        self.actor = actor

    def __call__(self, records: list[ProvenanceRecord]) -> None:
        self.write(lambda: write_records(records, actor=self.actor))

    def write_spooled(self, lines: list[bytes]) -> None:
        """Spool lines straight to the database (prepare_spooled, on PostgreSQL), or
        through decode and write_records where a line is not in the exact form."""
        prepared = prepare_spooled(lines) if connection.vendor == "postgresql" else None
        if prepared is not None:
            self.write(lambda: write_prepared(prepared, actor=self.actor))
            return
        try:
            records = [ProvenanceRecord.decode(line) for line in lines]
        except ValueError as exc:
            raise Rejected(f"cannot decode: {exc}") from None
        self(records)

    def write(self, call) -> None:
        try:
            call()
        except (IntegrityError, DataError, ValueError) as exc:
            raise Rejected(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__) from None
        except DatabaseError:
            self.close()  # a broken connection is replaced on the next attempt
            raise

    def close(self) -> None:
        try:
            connection.close()
        except DatabaseError:
            pass


