"""verify_ledger: recompute the ledger from its rows and hold it against the signed
checkpoints.

One pass over the entries in index order, in chunks (memory stays bounded whatever
the size):
- every entry is re-derived from its stored body (leaf hash, canonical JSON, the index
  inside the body), and the indexes must run 0, 1, 2, … with no hole;
- every stored Merkle node is recomputed from the leaves as the pass completes it;
- when the pass reaches a checkpoint's size, the root folded from the recomputed
  subtrees must equal the signed root, the signature must verify under a registered
  ledger key that was not revoked when it signed, every witness cosignature must
  verify, and a consistency proof from the stored nodes must link it to the previous
  checkpoint.

The first failure stops the run; its index is the first entry whose integrity can no
longer be established: the entry itself for a bad row, the first entry a bad node
covers, and for a bad checkpoint the first entry that no earlier valid checkpoint
vouches for (a signed root says *that* something in its range changed, not where).

Triggers are not trusted: a change made with them dropped is found all the same.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from django.db import connection
from django.db.models import Max, Min, Q

from compliance.ledger import events, keyevents, keylog, ledger, merkle, notes, tree, verify_parallel
from compliance.ledger.checkpoints import CheckpointInvalid, Keyring
from compliance.models import Checkpoint, LedgerEntry, MerkleNode, VerificationRun, WitnessCosignature

log = logging.getLogger("traceledger.verify")

CHUNK = 8192
CHECKPOINT_PAGE = 500
SHIFT = MerkleNode.LEVEL_SHIFT
STORED_FROM_LEVEL = tree.STORED_FROM_LEVEL


@dataclass
class Result:
    ok: bool
    mode: str
    size: int
    checked_from: int = 0
    checked_upto: int = 0
    entries_checked: int = 0
    nodes_checked: int = 0
    checkpoints_checked: int = 0
    cosignatures_checked: int = 0
    first_bad_index: int | None = None
    message: str = ""
    seconds: float = 0.0
    checkpoint_id: int | None = None
    checkpoint_size: int | None = None
    checkpoint_root: str = ""
    run_id: int | None = None
    workers: int = 1  # processes that checked the entries (1: this one)

    @property
    def entries_per_s(self) -> float:
        return self.entries_checked / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        if not self.ok:
            return f"LEDGER VERIFICATION FAILED at entry #{self.first_bad_index}: {self.message}"
        span = f"entries {self.checked_from}..{self.checked_upto - 1}" if self.checked_upto > self.checked_from \
            else "no new entries"
        anchor = (f"; newest signed checkpoint: size {self.checkpoint_size} (#{self.checkpoint_id})"
                  if self.checkpoint_id else "; no checkpoint yet")
        return (f"ledger OK ({self.mode}): {span} of {self.size}, {self.nodes_checked} nodes, "
                f"{self.checkpoints_checked} checkpoints, {self.cosignatures_checked} cosignatures verified "
                f"in {self.seconds:.2f}s{anchor}" + (f"; {self.message}" if self.message else ""))

    def to_dict(self) -> dict:
        return asdict(self) | {"entries_per_s": round(self.entries_per_s, 1)}


class Failure(Exception):
    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index
        self.message = message


@dataclass
class _Anchor:
    """The newest checkpoint established so far: (id, size, root)."""

    id: int | None
    size: int
    root: bytes


def _anchor_gone(last: VerificationRun, n: int) -> None:
    """The checkpoint an earlier successful run reached is gone: say how."""
    if last.checkpoint_size > n:
        raise Failure(n, f"truncated: the ledger has {n} entries, fewer than checkpoint #{last.checkpoint_id} (size "
                         f"{last.checkpoint_size}) that verification run #{last.id} reached, which is missing too")
    raise Failure(last.checkpoint_size, f"checkpoints deleted: checkpoint #{last.checkpoint_id} (size "
                                        f"{last.checkpoint_size}) that verification run #{last.id} reached is missing")


def _fold(stack: list[bytes]) -> bytes:
    """Root of the tree whose perfect subtrees, largest first, are `stack`."""
    if not stack:
        return merkle.EMPTY_ROOT
    root = stack[-1]
    for h in reversed(stack[:-1]):
        root = merkle.node_hash(h, root)
    return root


def _can_fork_workers() -> bool:
    """Worker processes see what this one sees: committed rows in a database file or
    server (not an in-memory SQLite, not an open transaction), and may be started here
    (not inside a daemonic process such as a Celery prefork child)."""
    import multiprocessing

    name = str(connection.settings_dict.get("NAME") or "")
    in_memory = connection.vendor == "sqlite" and (not name or ":memory:" in name or "mode=memory" in name)
    return not (in_memory or connection.in_atomic_block or multiprocessing.current_process().daemon)


class _Verifier:
    def __init__(self, chunk: int = CHUNK, workers: int = 1, progress=None):
        self.chunk = chunk
        self.workers = workers
        self.progress = progress or (lambda done, total: None)
        # keys as the ledger registers them; the key table is compared at the end
        self.key_log = keyevents.load()
        self.ledger_keys = Keyring("ledger", self.key_log)
        self.witness_keys = Keyring("witness", self.key_log)
        self.key_leaves: list[bytes] = []

    def run(self, since_last: bool) -> Result:
        # Snapshot in this order: a checkpoint that exists now has a size no larger than
        # the head read after it, and an entry that exists now has an index below it.
        max_checkpoint_id = Checkpoint.objects.aggregate(m=Max("id"))["m"] or 0
        bounds = LedgerEntry.objects.aggregate(lo=Min("index"), hi=Max("index"))
        n = ledger.size()
        result = Result(ok=False, mode=VerificationRun.FULL, size=n)
        self.result = result

        anchor, stack, note = _Anchor(None, 0, merkle.EMPTY_ROOT), [], ""
        if since_last:
            found = self._since_last_anchor(n)
            if isinstance(found, str):
                note = found
            else:
                anchor, stack = found
                result.mode = VerificationRun.SINCE_LAST
        result.checked_from = anchor.size
        result.checked_upto = n
        self.key_leaves = keyevents.registry_leaves(anchor.size) if anchor.size else []
        self.anchor = anchor
        if anchor.id is not None:
            result.checkpoint_id, result.checkpoint_size, result.checkpoint_root = anchor.id, anchor.size, anchor.root.hex()

        if result.mode == VerificationRun.FULL and bounds["lo"] is not None and bounds["lo"] < 0:
            raise Failure(bounds["lo"], f"entry #{bounds['lo']} has a negative index")
        checkpoints = self._checkpoints(anchor.id or 0, max_checkpoint_id)
        pending = next(checkpoints, None)
        pending = self._check_due(pending, checkpoints, anchor.size, stack)
        aligned = min(n, -(-anchor.size // self.chunk) * self.chunk)
        parallel = (self.workers > 1 and self.chunk & (self.chunk - 1) == 0 and n - aligned >= 2 * self.chunk
                    and _can_fork_workers())
        for a in range(anchor.size, aligned if parallel else n, self.chunk):
            b = min(n, (a // self.chunk + 1) * self.chunk)
            pending = self._chunk(a, b, stack, pending, checkpoints)
            self.progress(b - anchor.size, n - anchor.size)
        if parallel:
            result.workers = self.workers
            sizes = list(Checkpoint.objects.filter(id__gt=anchor.id or 0, id__lte=max_checkpoint_id,
                                                   size__gt=aligned).values_list("size", flat=True))
            pending = self._parallel(aligned, n, stack, pending, checkpoints, sizes, anchor.size)
        if pending is not None:
            raise Failure(n, f"checkpoint #{pending.id} vouches for {pending.size} entries but the ledger has {n}: "
                             f"entries {n}..{pending.size - 1} are missing (the log was truncated)")
        if bounds["hi"] is not None and bounds["hi"] >= n:
            raise Failure(n, f"entry #{bounds['hi']} lies beyond the ledger head ({n} entries): "
                             f"a row was inserted outside the append path")
        last = VerificationRun.objects.filter(ok=True, checkpoint_id__isnull=False).order_by("-id").first()
        if last is not None and not Checkpoint.objects.filter(id=last.checkpoint_id).exists():
            _anchor_gone(last, n)
        differs = keyevents.differences(self.key_log)
        if differs:
            raise Failure(differs[0].index if differs[0].index is not None else n, keyevents.describe(differs))
        result.ok = True
        result.message = note
        return result

    # ------------------------------------------------------------- anchors

    def _since_last_anchor(self, n: int) -> tuple[_Anchor, list[bytes]] | str:
        """The last checkpoint a successful run verified, re-checked: its signature, and
        the stored frontier nodes still folding to its root.  A string says why a full
        run is needed instead."""
        last = VerificationRun.objects.filter(ok=True, checkpoint_id__isnull=False).order_by("-id").first()
        if last is None:
            return "no earlier successful verification: ran a full verification"
        cp = Checkpoint.objects.filter(id=last.checkpoint_id).first()
        # a missing or changed anchor is tampering, never a reason to quietly start over
        if cp is None:
            _anchor_gone(last, n)
        if cp.size != last.checkpoint_size or cp.root_hash != last.checkpoint_root:
            raise Failure(last.checkpoint_size, f"checkpoint #{cp.id} that the last verification reached has changed "
                                                f"(size {last.checkpoint_size} → {cp.size})")
        if cp.size > n:
            raise Failure(n, f"truncated: the ledger has {n} entries, fewer than checkpoint #{cp.id} (size {cp.size}) "
                             "that the last verification reached")
        try:
            parsed, _ = self.ledger_keys.check_checkpoint(cp.note, cp.created_at)
        except CheckpointInvalid as exc:
            return f"checkpoint #{cp.id} no longer verifies ({exc}): ran a full verification"
        keys = merkle.nodes_needed_for_root(cp.size)
        stored = tree.DbNodeReader().get_many(keys) if keys else {}
        stack = [stored.get(k, b"") for k in keys]
        if not all(stack) or parsed.size != cp.size or _fold(stack) != parsed.root_hash:
            return f"stored nodes no longer reproduce checkpoint #{cp.id}: ran a full verification"
        return _Anchor(cp.id, cp.size, parsed.root_hash), stack

    def _checkpoints(self, after_id: int, upto_id: int):
        """Checkpoints after `after_id` (up to the snapshot), in id order, paged, with
        their cosignatures."""
        last = after_id
        while True:
            page = list(Checkpoint.objects.filter(id__gt=last, id__lte=upto_id).order_by("id")[:CHECKPOINT_PAGE])
            if not page:
                return
            cosigs: dict[int, list[WitnessCosignature]] = {}
            for c in WitnessCosignature.objects.filter(checkpoint_id__in=[c.id for c in page]).order_by("id"):
                cosigs.setdefault(c.checkpoint_id, []).append(c)
            for cp in page:
                cp.cosigs = cosigs.get(cp.id, [])
                yield cp
            last = page[-1].id

    # ------------------------------------------------------------- checking

    def _check_due(self, pending, checkpoints, done: int, stack: list[bytes]):
        """Check every pending checkpoint whose size is `done` (the entries streamed so far)."""
        while pending is not None and pending.size <= done:
            if pending.size < done:
                raise Failure(min(pending.size, self.anchor.size),
                              f"checkpoint #{pending.id} has size {pending.size}, smaller than checkpoint "
                              f"#{self.anchor.id} before it (size {self.anchor.size}): the log was rolled back")
            self._check_checkpoint(pending, stack)
            pending = next(checkpoints, None)
        return pending

    def _check_checkpoint(self, cp: Checkpoint, stack: list[bytes]) -> None:
        problems = []
        try:
            parsed = notes.parse_checkpoint(notes.parse_note(cp.note)[0])
        except notes.NoteError as exc:
            parsed = None
            problems.append(f"malformed checkpoint note ({exc})")
        if parsed is not None:
            try:
                self.ledger_keys.check_checkpoint(cp.note, cp.created_at)
            except CheckpointInvalid as exc:
                problems.append(str(exc))
        recomputed = _fold(stack)
        if parsed is not None:
            if parsed.size != cp.size:
                problems.append(f"note says size {parsed.size}, row says {cp.size}")
            if parsed.root_hash != recomputed:
                problems.append(f"signed root {parsed.root_hash.hex()[:16]}… differs from the root recomputed "
                                f"from the entries ({recomputed.hex()[:16]}…)")
        if cp.root_hash != recomputed.hex():
            problems.append("root_hash column differs from the root recomputed from the entries")
        committed = keylog.parse_registry_line(parsed.extensions) if parsed is not None else None
        if committed is not None and committed != keylog.registry_digest(self.key_leaves):
            problems.append(f"the key registry it commits to ({committed[0]} key entries) differs from the key "
                            f"entries below size {cp.size} ({len(self.key_leaves)})")
        for cosig in cp.cosigs:
            try:
                self.witness_keys.check_cosignature(cp.note, cosig.line, cosig.key_id, cosig.created_at)
                self.result.cosignatures_checked += 1
            except CheckpointInvalid as exc:
                problems.append(str(exc))
        if not problems and self.anchor.size > 0 and cp.size > self.anchor.size:
            try:
                proof = tree.consistency_proof(self.anchor.size, cp.size)
            except merkle.MissingNodeError as exc:
                proof = None
                problems.append(f"stored node {exc.args[0]} needed to prove consistency is missing")
            if proof is not None and not merkle.verify_consistency(
                    self.anchor.size, cp.size, self.anchor.root, parsed.root_hash, proof):
                problems.append(f"not consistent with checkpoint #{self.anchor.id} (size {self.anchor.size})")
        if problems:
            raise Failure(self.anchor.size, f"checkpoint #{cp.id} (size {cp.size}): " + "; ".join(problems) +
                          f"; entries {self.anchor.size}..{cp.size - 1} are not vouched for by a valid checkpoint")
        self.anchor = _Anchor(cp.id, cp.size, parsed.root_hash)
        self.result.checkpoints_checked += 1
        self.result.checkpoint_id, self.result.checkpoint_size = cp.id, cp.size
        self.result.checkpoint_root = cp.root_hash

    def _parallel(self, start: int, n: int, stack: list[bytes], pending, checkpoints, sizes: list[int], origin: int):
        """Chunks [start, n) checked by worker processes (verify_parallel), folded here in order."""
        top = self.chunk.bit_length() - 1
        node_hash = merkle.node_hash
        with verify_parallel.pool(self.workers) as executor:
            for a, b, result in verify_parallel.chunk_results(executor, start, n, self.chunk, top, STORED_FROM_LEVEL,
                                                              sizes, 2 * self.workers):
                if result[0] == "fail":
                    raise Failure(result[1], result[2])
                _, frontier, inside, nodes_checked = result
                # the key entries' leaves (checked by the worker with their rows), for the
                # key registry each checkpoint commits to
                key_rows = list(LedgerEntry.objects.filter(index__gte=a, index__lt=b, kind__in=keylog.KEY_KINDS)
                                .order_by("index").values_list("index", "leaf_hash"))
                while pending is not None and a < pending.size < b and pending.size in inside:
                    while key_rows and key_rows[0][0] < pending.size:
                        self.key_leaves.append(bytes.fromhex(key_rows.pop(0)[1]))
                    pending = self._check_due(pending, checkpoints, pending.size, stack + inside[pending.size])
                self.key_leaves.extend(bytes.fromhex(h) for _, h in key_rows)
                if b - a == self.chunk:  # a whole subtree: its root joins the frontier
                    (h,) = frontier
                    level, i, above = top, a >> top, None
                    while i & 1:
                        h = node_hash(stack.pop(), h)
                        level, i = level + 1, i >> 1
                        if above is None:
                            above = verify_parallel.stored_nodes_above(a, b, top)
                            nodes_checked += len(above)
                        stored = above.get((level << SHIFT) | i)
                        if stored != h and (stored is not None or level >= STORED_FROM_LEVEL):
                            raise Failure(i << level, self._node_problem(level, i, stored))
                    stack.append(h)
                else:
                    stack.extend(frontier)
                self.result.entries_checked += b - a
                self.result.nodes_checked += nodes_checked
                pending = self._check_due(pending, checkpoints, b, stack)
                self.progress(b - origin, n - origin)
        return pending

    def _nodes_completing_in(self, a: int, b: int) -> dict[int, bytes]:
        """Stored nodes whose last leaf lies in [a, b), keyed by node id."""
        q = Q()
        level = 0
        while (b >> level) > (a >> level):
            q |= Q(id__gte=(level << SHIFT) | (a >> level), id__lt=(level << SHIFT) | (b >> level))
            level += 1
        return {i: bytes(h) for i, h in MerkleNode.objects.filter(q).values_list("id", "hash")}

    def _chunk(self, a: int, b: int, stack: list[bytes], pending, checkpoints):
        rows = LedgerEntry.objects.filter(index__gte=a, index__lt=b).order_by("index").values_list(
            "index", "kind", "subject", "body", "leaf_hash")
        nodes = self._nodes_completing_in(a, b)
        expected = a
        node_hash = merkle.node_hash
        check_row = ledger.check_row
        key_kinds = keylog.KEY_KINDS
        next_size = pending.size if pending is not None else -1
        for index, kind, subject, body, leaf_hash in rows:
            if index != expected:
                raise Failure(expected, f"entry #{expected} is missing (the next stored entry is #{index})")
            h, problem = check_row(index, kind, subject, body, leaf_hash)
            if problem:
                raise Failure(index, f"entry #{index} ({kind}): {problem}")
            if kind in key_kinds:
                self.key_leaves.append(h)
            level, i = 0, index
            while True:
                stored = nodes.get((level << SHIFT) | i)
                # below STORED_FROM_LEVEL a node is absent by design (derived from the
                # leaf hashes just checked); one left by an older version must agree
                if stored != h and (stored is not None or level >= STORED_FROM_LEVEL):
                    raise Failure(i << level, self._node_problem(level, i, stored))
                if not i & 1:
                    break
                h = node_hash(stack.pop(), h)
                level, i = level + 1, i >> 1
            stack.append(h)
            expected = index + 1
            if expected == next_size:
                pending = self._check_due(pending, checkpoints, expected, stack)
                next_size = pending.size if pending is not None else -1
        if expected != b:
            raise Failure(expected, f"entry #{expected} is missing")
        self.result.entries_checked += b - a
        self.result.nodes_checked += len(nodes)
        return pending

    @staticmethod
    def _node_problem(level: int, i: int, stored: bytes | None) -> str:
        return verify_parallel.node_problem(level, i, stored)


def verify_ledger(since_last: bool = False, *, alert: bool = False, chunk: int = CHUNK, workers: int = 1,
                  progress=None) -> Result:
    """Verify the ledger (everything, or only what is new since the last verified
    checkpoint); record the run; raise a `ledger.verification_failed` alert on failure
    when `alert` is set.  Never raises for a bad ledger: the Result says what is wrong.
    `workers` > 1 checks whole chunks in that many forked processes where they can see
    the same rows (verify_parallel); `progress(done, total)` is told entries as they pass."""
    run = VerificationRun.objects.create(mode=VerificationRun.SINCE_LAST if since_last else VerificationRun.FULL)
    started = time.monotonic()
    verifier = _Verifier(chunk, workers, progress)
    try:
        result = verifier.run(since_last)
    except Failure as failure:
        result = verifier.result
        result.ok, result.first_bad_index, result.message = False, failure.index, failure.message
    result.seconds = time.monotonic() - started
    result.run_id = run.id
    VerificationRun.objects.filter(pk=run.pk).update(
        mode=result.mode, finished_at=datetime.now(timezone.utc), ok=result.ok, first_bad_index=result.first_bad_index,
        message=result.message[:5000], checked_from=result.checked_from, checked_upto=result.checked_upto,
        entries_checked=result.entries_checked, checkpoint_id=result.checkpoint_id if result.ok else None,
        checkpoint_size=result.checkpoint_size if result.ok else None,
        checkpoint_root=result.checkpoint_root if result.ok else "",
    )
    if not result.ok:
        log.error("ledger verification failed at entry #%s: %s", result.first_bad_index, result.message)
        if alert:
            _alert(result)
    return result


def _alert(result: Result) -> None:
    message = f"ledger verification failed at entry #{result.first_bad_index}: {result.message}"
    details = {"first_bad_index": result.first_bad_index, "message": result.message, "run_id": result.run_id,
               "mode": result.mode}
    events.report("ledger.verification_failed", message, severity="critical", subject="ledger", details=details,
                  store_alone_on_failure=True)
