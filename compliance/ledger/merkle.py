"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing, proofs and verifiers.

Pure module: standard library only (also used by the offline verifier).

Storage model: the hash of every *complete* (perfect) subtree is stored as node
``(level, index)`` covering leaves ``[index * 2**level, (index + 1) * 2**level)``;
level 0 holds the leaf hashes.  Any RFC 9162 tree hash MTH(D[a:b]) that occurs in a
root or proof is a fold of O(log n) such nodes, so roots at any size, inclusion and
consistency proofs all cost O(log n) node reads.

A node source is one of: a callable ``get(level, index) -> bytes``, a mapping keyed by
``(level, index)``, or a :class:`NodeReader` (``get`` plus batched ``get_many``); a
reader's ``get_many`` is called once with every key the operation needs.

The verifiers check a proof against a (size, root) pair and, as in RFC 9162, do not
bind the size by themselves (a proof for index 0 at size 3 also passes at size 4 with
the size-3 root): always take size and root from the same signed checkpoint.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol, Union, runtime_checkable

HASH_SIZE = 32
_sha256 = hashlib.sha256
EMPTY_ROOT = hashlib.sha256(b"").digest()
MAX_SIZE = 2**64 - 1

Key = tuple[int, int]
NodeRow = tuple[int, int, bytes]


@runtime_checkable
class NodeReader(Protocol):
    """Read access to stored perfect-subtree nodes."""

    def get(self, level: int, index: int) -> bytes: ...

    def get_many(self, keys: Sequence[Key]) -> Mapping[Key, bytes]: ...


NodeSource = Union[Callable[[int, int], bytes], Mapping[Key, bytes], NodeReader]


class MissingNodeError(LookupError):
    """A node needed for the computation is not in the store."""


class DictNodeReader:
    """A :class:`NodeReader` over an in-memory mapping; counts reads (for tests)."""

    def __init__(self, nodes: Mapping[Key, bytes] | None = None) -> None:
        self.nodes: dict[Key, bytes] = dict(nodes or {})
        self.reads = 0

    def get(self, level: int, index: int) -> bytes:
        self.reads += 1
        try:
            return self.nodes[(level, index)]
        except KeyError:
            raise MissingNodeError((level, index)) from None

    def get_many(self, keys: Sequence[Key]) -> Mapping[Key, bytes]:
        self.reads += len(keys)
        return {k: self.nodes[k] for k in keys if k in self.nodes}

    __call__ = get

    def store(self, rows: Iterable[NodeRow]) -> None:
        for level, index, h in rows:
            self.nodes[(level, index)] = h


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data); `data` any bytes-like (bytes concatenation takes buffers,
    so nothing is copied beforehand: this runs once per appended entry)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def _check_hash(h: object, what: str) -> bytes:
    if isinstance(h, (bytes, bytearray, memoryview)):
        b = bytes(h)
        if len(b) == HASH_SIZE:
            return b
    raise ValueError(f"{what} is not a {HASH_SIZE}-byte hash")


def _check_size(size: int, what: str = "size") -> None:
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_SIZE:
        raise ValueError(f"{what} must be an integer in [0, 2**64)")


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


# ---------------------------------------------------------------- key planning


def _range_keys(a: int, b: int, out: list[Key]) -> None:
    """Append the stored nodes whose fold is MTH(D[a:b]) (same recursion as _range_hash)."""
    while True:
        n = b - a
        if _is_pow2(n) and a % n == 0:
            out.append((n.bit_length() - 1, a // n))
            return
        k = _split(n)
        _range_keys(a, a + k, out)
        a += k


def _range_hash(a: int, b: int, get: Callable[[int, int], bytes]) -> bytes:
    """MTH(D[a:b]) per RFC 9162 §2.1.1, reading a stored node for every aligned perfect piece."""
    n = b - a
    if _is_pow2(n) and a % n == 0:
        return get(n.bit_length() - 1, a // n)
    k = _split(n)
    return node_hash(_range_hash(a, a + k, get), _range_hash(a + k, b, get))


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges of PATH(index, D[0:size]) (RFC 9162 §2.1.3.1), in proof order."""
    out: list[tuple[int, int]] = []
    a, b = 0, size
    while b - a > 1:
        k = _split(b - a)
        if index < a + k:
            out.append((a + k, b))
            b = a + k
        else:
            out.append((a, a + k))
            a += k
    out.reverse()
    return out


def _consistency_ranges(m: int, n: int) -> list[tuple[int, int]]:
    """Leaf ranges of PROOF(m, D[0:n]) = SUBPROOF(m, D[0:n], true) (RFC 9162 §2.1.4.1)."""
    out: list[tuple[int, int]] = []
    a, b, complete = 0, n, True
    while m != b:
        k = _split(b - a)
        if m <= a + k:
            out.append((a + k, b))
            b = a + k
        else:
            out.append((a, a + k))
            a, complete = a + k, False
    if not complete:
        out.append((a, b))
    out.reverse()
    return out


def _keys_for(ranges: Iterable[tuple[int, int]]) -> list[Key]:
    keys: list[Key] = []
    for a, b in ranges:
        _range_keys(a, b, keys)
    return list(dict.fromkeys(keys))


def nodes_needed_for_subtree(start: int, end: int) -> list[Key]:
    """Stored nodes read by :func:`subtree_hash` for [start, end)."""
    _check_pair(start, end, "start end", strict=True)
    return _keys_for([(start, end)])


def nodes_needed_for_root(size: int) -> list[Key]:
    """Stored nodes read by :func:`root` (popcount(size) keys, largest first)."""
    _check_size(size)
    return _keys_for([(0, size)]) if size else []


def nodes_needed_for_inclusion(index: int, size: int) -> list[Key]:
    """Stored nodes read by :func:`inclusion_proof`."""
    _check_pair(index, size, "index size", strict=True)
    return _keys_for(_inclusion_ranges(index, size))


def nodes_needed_for_consistency(old_size: int, new_size: int) -> list[Key]:
    """Stored nodes read by :func:`consistency_proof`."""
    _check_pair(old_size, new_size, "old_size new_size", strict=False)
    if old_size in (0, new_size):
        return []
    return _keys_for(_consistency_ranges(old_size, new_size))


# ------------------------------------------------------------------- readers


def _plain_getter(src: NodeSource) -> Callable[[int, int], bytes]:
    if isinstance(src, Mapping):
        fn: Callable[[int, int], object] = lambda level, index: src[(level, index)]
    elif callable(src):
        fn = src
    elif hasattr(src, "get"):
        fn = src.get
    else:
        raise TypeError("node source must be a callable, a mapping or a NodeReader")

    def get(level: int, index: int) -> bytes:
        try:
            h = fn(level, index)
        except KeyError:
            raise MissingNodeError((level, index)) from None
        return _check_hash(h, f"node {(level, index)}")

    return get


def _getter(src: NodeSource, keys: Sequence[Key]) -> Callable[[int, int], bytes]:
    """A getter over src; a NodeReader is asked once, via get_many, for all keys."""
    if isinstance(src, Mapping) or not hasattr(src, "get_many"):
        return _plain_getter(src)
    fetched = src.get_many(list(keys)) if keys else {}
    return _plain_getter(dict(fetched))


# ----------------------------------------------------------------- computing


def _check_pair(lo: int, hi: int, names: str, strict: bool) -> None:
    """Both valid sizes and lo < hi (strict) or lo <= hi."""
    lo_name, hi_name = names.split()
    _check_size(lo, lo_name)
    _check_size(hi, hi_name)
    if lo > hi or (strict and lo == hi):
        raise ValueError(f"{lo_name} must be {'<' if strict else '<='} {hi_name}")


def subtree_hash(start: int, end: int, get_node: NodeSource) -> bytes:
    """MTH(D[start:end]) from stored perfect subtrees.

    O(log n) reads when ``start`` is a multiple of the smallest power of two
    >= end - start (true of every range in roots and RFC 9162 proofs); other ranges
    are still computed correctly, reading more nodes.
    """
    keys = nodes_needed_for_subtree(start, end)
    return _range_hash(start, end, _getter(get_node, keys))


def root(size: int, get_node: NodeSource) -> bytes:
    """Root hash of the tree at ``size`` (any size up to the current one)."""
    keys = nodes_needed_for_root(size)
    if size == 0:
        return EMPTY_ROOT
    return _range_hash(0, size, _getter(get_node, keys))


def inclusion_proof(index: int, size: int, get_node: NodeSource) -> list[bytes]:
    """PATH(index, D[0:size]) per RFC 9162 §2.1.3.1, leaf-side first."""
    _check_pair(index, size, "index size", strict=True)
    ranges = _inclusion_ranges(index, size)
    get = _getter(get_node, _keys_for(ranges))
    return [_range_hash(a, b, get) for a, b in ranges]


def consistency_proof(old_size: int, new_size: int, get_node: NodeSource) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]) per RFC 9162 §2.1.4.1 (empty for 0 or equal sizes)."""
    _check_pair(old_size, new_size, "old_size new_size", strict=False)
    if old_size in (0, new_size):
        return []
    ranges = _consistency_ranges(old_size, new_size)
    get = _getter(get_node, _keys_for(ranges))
    return [_range_hash(a, b, get) for a, b in ranges]


def nodes_for_batch(
    size_before: int, leaf_hashes: Sequence[bytes], get_node: NodeSource
) -> list[NodeRow]:
    """Rows ``(level, index, hash)`` to store after appending ``leaf_hashes``.

    Every leaf plus every perfect subtree the batch completes; subtrees inside the
    batch are built in memory and only left-frontier nodes of the old tree (at most
    popcount(size_before)) are read.
    """
    batch = BatchNodes(size_before, len(leaf_hashes), get_node)
    for lh in leaf_hashes:
        batch.add(lh)
    return batch.rows


class BatchNodes:
    """:func:`nodes_for_batch` one leaf at a time, for an appender that hashes its
    leaves as it streams them: the old frontier is read up front, then each
    :meth:`add` extends ``rows`` with the leaf and the subtrees it completes."""

    def __init__(self, size_before: int, count: int, get_node: NodeSource) -> None:
        _check_size(size_before, "size_before")
        _check_size(size_before + count, "new size")
        frontier = _batch_frontier(size_before, count) if count else []
        self._old = _getter(get_node, frontier)
        self._frontier = set(frontier)
        self._pending: dict[int, tuple[int, bytes]] = {}  # level -> (index, hash) of a left child
        self.start = self.size = size_before
        self.end = size_before + count
        self.rows: list[NodeRow] = []

    def add(self, leaf_hash: bytes) -> None:
        level, index = 0, self.size
        if index >= self.end:
            raise ValueError("more leaves than the batch was opened for")
        # once per leaf of every append: check a plain digest without making the message
        h = leaf_hash if type(leaf_hash) is bytes and len(leaf_hash) == HASH_SIZE else _check_hash(
            leaf_hash, f"leaf hash {index - self.start}")
        rows, pending = self.rows, self._pending
        rows.append((level, index, h))
        while index & 1:
            mine = pending.pop(level, None)
            if mine is not None and mine[0] == index - 1:
                left = mine[1]
            elif (level, index - 1) in self._frontier:
                left = self._old(level, index - 1)
            else:
                raise MissingNodeError((level, index - 1))
            h = node_hash(left, h)
            level, index = level + 1, index >> 1
            rows.append((level, index, h))
        pending[level] = (index, h)
        self.size += 1


def _batch_frontier(size_before: int, count: int) -> list[Key]:
    """Old perfect subtrees that become left children of subtrees the batch completes."""
    keys = []
    for level in range(size_before.bit_length()):
        if size_before >> level & 1:
            parent_end = ((size_before >> (level + 1)) + 1) << (level + 1)
            if size_before + count >= parent_end:
                keys.append((level, (size_before >> level) - 1))
    return keys


def nodes_to_store_after_append(
    size_before: int, leaf_hash: bytes, get_node: NodeSource
) -> list[NodeRow]:
    """Rows to store after appending one leaf: the leaf and each subtree it completes."""
    return nodes_for_batch(size_before, [leaf_hash], get_node)


def naive_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Reference MTH by full recomputation (RFC 9162 §2.1.1); O(n), for tests."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return bytes(leaf_hashes[0])
    k = _split(n)
    return node_hash(naive_root(leaf_hashes[:k]), naive_root(leaf_hashes[k:]))


# ----------------------------------------------------------------- verifying


def _hashes_ok(*hs: object) -> bool:
    return all(isinstance(h, (bytes, bytearray)) and len(h) == HASH_SIZE for h in hs)


def _eq(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(bytes(a), bytes(b))


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` show ``leaf_hash`` at ``index`` in the tree ``root``?"""
    if not _hashes_ok(root):
        return False
    try:
        return _eq(root_from_inclusion(leaf_hash, index, size, proof), root)
    except ValueError:
        return False


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree (new_size, new_root) an extension of (old_size, old_root)?

    Equal sizes need an empty proof and equal roots; size 0 needs an empty proof and
    ``old_root == EMPTY_ROOT``.
    """
    if not (isinstance(old_size, int) and isinstance(new_size, int)):
        return False
    if not 0 <= old_size <= new_size <= MAX_SIZE or not _hashes_ok(old_root, new_root, *proof):
        return False
    if old_size == new_size:
        return not proof and _eq(old_root, new_root)
    if old_size == 0:
        return not proof and _eq(old_root, EMPTY_ROOT)
    if not proof:
        return False
    path = [bytes(old_root), *proof] if _is_pow2(old_size) else [bytes(p) for p in proof]
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and _eq(fr, old_root) and _eq(sr, new_root)


def root_from_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root implied by an inclusion proof (raises ValueError if it is malformed)."""
    if not (isinstance(index, int) and isinstance(size, int)) or not 0 <= index < size:
        raise ValueError("index out of range")
    if size > MAX_SIZE or not _hashes_ok(leaf_hash, *proof):
        raise ValueError("malformed inclusion proof")
    fn, sn, r = index, size - 1, bytes(leaf_hash)
    for p in proof:
        if sn == 0:
            raise ValueError("inclusion proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("inclusion proof too short")
    return r
