"""verify_ledger over worker processes: each checks whole subtrees of CHUNK entries.

A chunk [a, a + CHUNK) with `a` a multiple of CHUNK (a power of two) is one perfect
subtree, so everything inside it can be checked without the rest of the ledger: every
row re-derived from its body, the indexes gapless, every stored node whose leaves all
lie in it recomputed.  A worker returns the chunk's subtree hashes (one, its root, for
a whole chunk; the frontier of the last, partial one), and the frontier inside the
chunk at every checkpoint size that falls inside it.  The parent folds the chunk roots
in index order, checks the stored nodes above the chunks as they complete, and checks
every checkpoint against the frontier of the parent plus the chunk's: exactly what the
one-pass verifier does, with the per-entry work spread over processes.  Each worker
streams its chunk from the database on its own connection; the parent holds a bounded
window of chunks in flight, so memory stays flat whatever the size.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from django.db import connections
from django.db.models import Q

from compliance.ledger import ledger, merkle
from compliance.models import LedgerEntry, MerkleNode

SHIFT = MerkleNode.LEVEL_SHIFT


def _stored_nodes(a: int, b: int, min_level: int, max_level: int) -> dict[int, bytes]:
    """Stored nodes with min_level <= level <= max_level whose last leaf lies in [a, b)."""
    q = Q()
    level = min_level
    while level <= max_level and (b >> level) > (a >> level):
        q |= Q(id__gte=(level << SHIFT) | (a >> level), id__lt=(level << SHIFT) | (b >> level))
        level += 1
    if not q:
        return {}
    return {i: bytes(h) for i, h in MerkleNode.objects.filter(q).values_list("id", "hash")}


def node_problem(level: int, i: int, stored: bytes | None) -> str:
    what = (f"stored leaf node of entry #{i}" if level == 0 else
            f"stored Merkle node (level {level}, index {i}) over entries {i << level}..{((i + 1) << level) - 1}")
    return f"{what} is missing" if stored is None else f"{what} differs from the hash recomputed from the entries"


def check_chunk(a: int, b: int, top: int, stored_from: int, sizes: tuple[int, ...]) -> tuple:
    """Check entries [a, b) (a a multiple of 2**top, b - a <= 2**top).  Returns
    ("ok", frontier at b, {size: frontier at size for sizes inside}, nodes checked)
    or ("fail", first bad index, message)."""
    rows = LedgerEntry.objects.filter(index__gte=a, index__lt=b).order_by("index").values_list(
        "index", "kind", "subject", "body", "leaf_hash")
    nodes = _stored_nodes(a, b, 0, top)
    stack: list[bytes] = []
    frontiers: dict[int, list[bytes]] = {}
    wanted = set(sizes)
    expected = a
    node_hash, check_row = merkle.node_hash, ledger.check_row
    for index, kind, subject, body, leaf_hash in rows.iterator(chunk_size=2048):
        if index != expected:
            return "fail", expected, f"entry #{expected} is missing (the next stored entry is #{index})"
        h, problem = check_row(index, kind, subject, body, leaf_hash)
        if problem:
            return "fail", index, f"entry #{index} ({kind}): {problem}"
        level, i = 0, index
        while True:
            stored = nodes.get((level << SHIFT) | i)
            if stored != h and (stored is not None or level >= stored_from):
                return "fail", i << level, node_problem(level, i, stored)
            if not i & 1 or level == top:
                break
            h = node_hash(stack.pop(), h)
            level, i = level + 1, i >> 1
        stack.append(h)
        expected = index + 1
        if expected in wanted:
            frontiers[expected] = list(stack)
    if expected != b:
        return "fail", expected, f"entry #{expected} is missing"
    return "ok", stack, frontiers, len(nodes)


def _forget_inherited_connections() -> None:
    # the parent closed its connections before forking; a child opens its own
    for conn in connections.all():
        conn.connection = None


def pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes forked from this one (Django set up, no open connection)."""
    connections.close_all()
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_forget_inherited_connections)


def chunk_results(executor: ProcessPoolExecutor, start: int, n: int, chunk: int, top: int, stored_from: int,
                  checkpoint_sizes: list[int], window: int):
    """(a, b, result) for the chunks from `start` (a multiple of `chunk`) to n, in order,
    with at most `window` in flight."""
    from collections import deque

    pending: deque = deque()
    starts = iter(range(start, n, chunk))
    sizes = sorted(set(checkpoint_sizes))

    def submit() -> bool:
        a = next(starts, None)
        if a is None:
            return False
        b = min(n, a + chunk)
        inside = tuple(s for s in sizes if a < s < b)
        pending.append((a, b, executor.submit(check_chunk, a, b, top, stored_from, inside)))
        return True

    for _ in range(window):
        if not submit():
            break
    while pending:
        a, b, future = pending.popleft()
        result = future.result()
        yield a, b, result
        if result[0] == "fail":
            return
        submit()


def stored_nodes_above(a: int, b: int, top: int) -> dict[int, bytes]:
    """Stored nodes above the chunk level whose last leaf lies in [a, b) (parent side)."""
    return _stored_nodes(a, b, top + 1, 64)
