"""RFC 9162 Merkle tree: stored-node computation vs. the naive reference, proofs, verifiers.

Vectors are the CT reference test data (transparency-dev/merkle testonly/constants.go and
proof/verify_test.go; the same leaves and roots as the certificate-transparency tests).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance.ledger import merkle as M

LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]
ROOTS = [bytes.fromhex(h) for h in (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
NODE_HASHES = {  # (level, index) -> hash, every complete subtree of the 8-leaf tree
    (0, 0): "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    (0, 1): "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    (0, 2): "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    (0, 3): "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    (0, 4): "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    (0, 5): "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    (0, 6): "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    (0, 7): "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    (1, 0): "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    (1, 1): "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    (1, 2): "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    (1, 3): "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    (2, 0): "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    (2, 1): "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    (3, 0): "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
H = {k: bytes.fromhex(v) for k, v in NODE_HASHES.items()}
# (leaf index, tree size, proof): verify_test.go lists 1-based leaf numbers.
INCLUSION_VECTORS = [
    (0, 8, [H[0, 1], H[1, 1], H[2, 1]]),
    (5, 8, [H[0, 4], H[1, 3], H[2, 0]]),
    (2, 3, [H[1, 0]]),
    (1, 5, [H[0, 0], H[1, 1], H[0, 4]]),
]
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (1, 8, [H[0, 1], H[1, 1], H[2, 1]]),
    (6, 8, [H[1, 2], H[1, 3], H[2, 0]]),
    (2, 5, [H[1, 1], H[0, 4]]),
    (6, 7, [H[1, 2], H[0, 6], H[2, 0]]),
]


class LevelStore:
    """Compact store for big trees: one bytearray per level, rows must arrive in order."""

    def __init__(self) -> None:
        self.levels: list[bytearray] = []
        self.calls = 0

    def store(self, rows: Sequence[M.NodeRow]) -> None:
        for level, index, h in rows:
            while len(self.levels) <= level:
                self.levels.append(bytearray())
            assert len(self.levels[level]) == index * 32, "nodes must be appended in order"
            self.levels[level] += h

    def __call__(self, level: int, index: int) -> bytes:
        self.calls += 1
        data = self.levels[level]
        assert (index + 1) * 32 <= len(data), f"missing node {(level, index)}"
        return bytes(data[index * 32:(index + 1) * 32])


def build(leaf_hashes: Sequence[bytes], chunks: Sequence[int] = ()) -> M.DictNodeReader:
    """A store filled by nodes_for_batch in the given chunk sizes (rest: one at a time)."""
    store, size, pos = M.DictNodeReader(), 0, 0
    for c in chunks:
        part = list(leaf_hashes[pos:pos + c])
        store.store(M.nodes_for_batch(size, part, store))
        pos += len(part)
        size += len(part)
    for lh in leaf_hashes[pos:]:
        store.store(M.nodes_to_store_after_append(size, lh, store))
        size += 1
    return store


def distinct(n: int) -> list[bytes]:
    return [M.leaf_hash(b"leaf-%d" % i) for i in range(n)]


# RFC 9162 §2.1.3.1 / §2.1.4.1 on plain lists: the reference for proof contents.
def naive_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) <= 1:
        return []
    k = M._split(len(d))
    if m < k:
        return naive_path(m, d[:k]) + [M.naive_root(d[k:])]
    return naive_path(m - k, d[k:]) + [M.naive_root(d[:k])]


def naive_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [M.naive_root(d)]
    k = M._split(len(d))
    if m <= k:
        return naive_subproof(m, d[:k], b) + [M.naive_root(d[k:])]
    return naive_subproof(m - k, d[k:], False) + [M.naive_root(d[:k])]


def flip(h: bytes, bit: int = 3) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


# ------------------------------------------------------------------- vectors


def test_hashes_and_vector_roots() -> None:
    assert M.EMPTY_ROOT == ROOTS[0]
    assert M.leaf_hash(b"") == ROOTS[1]
    store = build([M.leaf_hash(x) for x in LEAVES])
    assert {k: v for k, v in store.nodes.items()} == H
    for n in range(len(ROOTS)):
        assert M.root(n, store) == ROOTS[n]
        assert M.naive_root([M.leaf_hash(x) for x in LEAVES[:n]]) == ROOTS[n]


@pytest.mark.parametrize("index,size,proof", INCLUSION_VECTORS)
def test_inclusion_vectors(index: int, size: int, proof: list[bytes]) -> None:
    store = build([M.leaf_hash(x) for x in LEAVES])
    assert M.inclusion_proof(index, size, store) == proof
    assert M.verify_inclusion(M.leaf_hash(LEAVES[index]), index, size, proof, ROOTS[size])


@pytest.mark.parametrize("m,n,proof", CONSISTENCY_VECTORS)
def test_consistency_vectors(m: int, n: int, proof: list[bytes]) -> None:
    store = build([M.leaf_hash(x) for x in LEAVES])
    assert M.consistency_proof(m, n, store) == proof
    assert M.verify_consistency(m, n, ROOTS[m], ROOTS[n], proof)


# --------------------------------------------------------- naive comparisons


@settings(max_examples=60, deadline=None)
@given(
    leaves=st.lists(st.binary(max_size=12), max_size=150),
    chunks=st.lists(st.integers(min_value=0, max_value=40), max_size=8),
)
def test_roots_at_every_size_match_naive(leaves: list[bytes], chunks: list[int]) -> None:
    lhs = [M.leaf_hash(x) for x in leaves]
    store = build(lhs, chunks)
    assert store.nodes == build(lhs).nodes  # batch and single appends store the same rows
    for n in range(len(lhs) + 1):
        assert M.root(n, store) == M.naive_root(lhs[:n])


@settings(max_examples=40, deadline=None)
@given(leaves=st.lists(st.binary(max_size=8), min_size=1, max_size=80), data=st.data())
def test_subtree_hash_any_range_matches_naive(leaves: list[bytes], data: st.DataObject) -> None:
    lhs = [M.leaf_hash(x) for x in leaves]
    store = build(lhs)
    start = data.draw(st.integers(0, len(lhs) - 1))
    end = data.draw(st.integers(start + 1, len(lhs)))
    assert M.subtree_hash(start, end, store) == M.naive_root(lhs[start:end])


@settings(max_examples=30, deadline=None)
@given(leaves=st.lists(st.binary(max_size=8), min_size=1, max_size=100), data=st.data())
def test_proofs_match_rfc_definitions(leaves: list[bytes], data: st.DataObject) -> None:
    lhs = [M.leaf_hash(x) for x in leaves]
    store = build(lhs)
    n = data.draw(st.integers(1, len(lhs)))
    i = data.draw(st.integers(0, n - 1))
    m = data.draw(st.integers(1, n))
    assert M.inclusion_proof(i, n, store) == naive_path(i, lhs[:n])
    assert M.verify_inclusion(lhs[i], i, n, M.inclusion_proof(i, n, store), M.naive_root(lhs[:n]))
    proof = M.consistency_proof(m, n, store)
    assert proof == (naive_subproof(m, lhs[:n], True) if m < n else [])
    assert M.verify_consistency(m, n, M.naive_root(lhs[:m]), M.naive_root(lhs[:n]), proof)


# -------------------------------------------------------- proofs & tampering


def test_inclusion_every_index_and_tampering() -> None:
    lhs = distinct(40)
    store = build(lhs)
    wrong = M.leaf_hash(b"wrong")
    for n in range(1, 41):
        r = M.root(n, store)
        for i in range(n):
            proof = M.inclusion_proof(i, n, store)
            assert M.verify_inclusion(lhs[i], i, n, proof, r)
            assert M.root_from_inclusion(lhs[i], i, n, proof) == r
            assert not M.verify_inclusion(wrong, i, n, proof, r)
            assert not M.verify_inclusion(lhs[i], i, n, proof, flip(r))
            assert not M.verify_inclusion(lhs[i], i, n, proof, M.EMPTY_ROOT)
            for j in range(n + 2):
                if j != i:
                    assert not M.verify_inclusion(lhs[i], j, n, proof, r)
            for k in range(len(proof)):
                bad = list(proof)
                bad[k] = flip(bad[k])
                assert not M.verify_inclusion(lhs[i], i, n, bad, r)
            assert not M.verify_inclusion(lhs[i], i, n, proof + [r], r)
            assert not M.verify_inclusion(lhs[i], i, n, [r] + proof, r)
            assert not M.verify_inclusion(lhs[i], i, n, proof + [b""], r)
            if proof:
                assert not M.verify_inclusion(lhs[i], i, n, proof[:-1], r)
                assert not M.verify_inclusion(lhs[i], i, n, proof[1:], r)


def test_consistency_every_pair_1_to_64_and_tampering() -> None:
    lhs = distinct(64)
    store = build(lhs)
    roots = [M.root(s, store) for s in range(65)]
    for m in range(1, 65):
        for n in range(m, 65):
            proof = M.consistency_proof(m, n, store)
            assert M.verify_consistency(m, n, roots[m], roots[n], proof)
            if m == n:
                assert proof == []
                assert not M.verify_consistency(m, n, roots[m], flip(roots[n]), [])
                assert not M.verify_consistency(m, n, roots[m], roots[n], [roots[m]])
                continue
            assert proof
            assert not M.verify_consistency(m, n, roots[n], roots[m], proof)
            assert not M.verify_consistency(m, n, flip(roots[m]), roots[n], proof)
            assert not M.verify_consistency(m, n, roots[m], flip(roots[n]), proof)
            assert not M.verify_consistency(m, n, roots[m], roots[n], [])
            assert not M.verify_consistency(n, m, roots[m], roots[n], proof)
            for k in range(len(proof)):
                bad = list(proof)
                bad[k] = flip(bad[k], 4)
                assert not M.verify_consistency(m, n, roots[m], roots[n], bad)
            for extra in (roots[m], roots[n], proof[0]):
                assert not M.verify_consistency(m, n, roots[m], roots[n], proof + [extra])
                assert not M.verify_consistency(m, n, roots[m], roots[n], [extra] + proof)
            assert not M.verify_consistency(m, n, roots[m], roots[n], proof[:-1])
            assert not M.verify_consistency(m, n, roots[m], roots[n], proof + [b"short"])


def test_consistency_edge_cases() -> None:
    store = build(distinct(5))
    r5 = M.root(5, store)
    assert M.consistency_proof(0, 5, store) == []
    assert M.verify_consistency(0, 5, M.EMPTY_ROOT, r5, [])
    assert not M.verify_consistency(0, 5, r5, r5, [])
    assert not M.verify_consistency(0, 5, M.EMPTY_ROOT, r5, [r5])
    assert M.verify_consistency(0, 0, M.EMPTY_ROOT, M.EMPTY_ROOT, [])
    assert not M.verify_consistency(0, 0, M.EMPTY_ROOT, M.EMPTY_ROOT, [M.EMPTY_ROOT])
    assert not M.verify_consistency(1, 2, b"x" * 31, r5, [r5])
    with pytest.raises(ValueError):
        M.consistency_proof(5, 4, store)
    with pytest.raises(ValueError):
        M.inclusion_proof(5, 5, store)
    assert not M.verify_inclusion(M.leaf_hash(b""), 0, 0, [], M.EMPTY_ROOT)
    with pytest.raises(M.MissingNodeError):
        M.root(6, store)


def test_size_is_bound_only_by_the_checkpoint() -> None:
    """Documented RFC 9162 property: callers must take (size, root) from one checkpoint."""
    store = build(distinct(4))
    proof = M.inclusion_proof(0, 3, store)
    assert M.verify_inclusion(M.leaf_hash(b"leaf-0"), 0, 4, proof, M.root(3, store))
    assert M.root(3, store) != M.root(4, store)


def test_node_sources_and_batched_reads() -> None:
    lhs = distinct(1000)
    store = build(lhs, [1000])
    calls: list[list[M.Key]] = []

    class Reader:
        def get(self, level: int, index: int) -> bytes:
            raise AssertionError("get_many should be used")

        def get_many(self, keys: Sequence[M.Key]) -> dict[M.Key, memoryview]:
            calls.append(list(keys))
            return {k: memoryview(store.nodes[k]) for k in keys}  # like psycopg bytea

    for size, i, m in [(1000, 0, 1), (1000, 999, 999), (777, 300, 513), (513, 512, 512)]:
        r = M.root(size, store)
        assert M.root(size, Reader()) == r == M.root(size, dict(store.nodes))
        assert calls.pop() == M.nodes_needed_for_root(size)
        p = M.inclusion_proof(i, size, Reader())
        assert calls.pop() == M.nodes_needed_for_inclusion(i, size)
        assert p == M.inclusion_proof(i, size, store.get)
        c = M.consistency_proof(m, size, Reader())
        assert calls.pop() == M.nodes_needed_for_consistency(m, size)
        assert c == M.consistency_proof(m, size, store)
        assert M.verify_consistency(m, size, M.root(m, store), r, c)
    rows = M.nodes_for_batch(1000, distinct(24)[:24], Reader())
    assert len(calls) == 1 and set(calls.pop()) <= set(M.nodes_needed_for_root(1000))
    assert rows[0][:2] == (0, 1000)
    with pytest.raises(ValueError):
        M.root(3, lambda level, index: b"short")


def test_batch_reads_only_the_frontier() -> None:
    store = LevelStore()
    lhs = distinct(3000)
    size = 0
    for c in (1, 2, 5, 1000, 7, 985, 1000):
        before = store.calls
        store.store(M.nodes_for_batch(size, lhs[size:size + c], store))
        assert store.calls - before <= max(size, 1).bit_length()
        size += c
    assert M.root(size, store) == M.naive_root(lhs)


def test_log_n_node_reads_at_one_million() -> None:
    n = 1_000_000
    store = LevelStore()
    size, chunk = 0, 65_536
    leaf = M.leaf_hash
    while size < n:
        c = min(chunk, n - size)
        before = store.calls
        store.store(M.nodes_for_batch(size, [leaf(b"%d" % i) for i in range(size, size + c)], store))
        assert store.calls - before <= max(size, 1).bit_length()
        size += c
    bound = 2 * math.log2(n) + 2
    before = store.calls
    store.store(M.nodes_to_store_after_append(n, leaf(b"one more"), store))
    assert store.calls - before <= math.log2(n) + 1
    for s in (n, n - 1, 999_999, 524_288, 524_289, 12_345, 1):
        before = store.calls
        M.root(s, store)
        assert store.calls - before <= math.log2(n) + 1
    r = M.root(n, store)
    for i in (0, 1, 524_287, 524_288, 999_998, 999_999, 777_777, 123_457):
        before = store.calls
        proof = M.inclusion_proof(i, n, store)
        assert store.calls - before <= bound
        assert M.verify_inclusion(leaf(b"%d" % i), i, n, proof, r)
    for m in (1, 2, 3, 524_287, 524_288, 524_289, 999_999, 654_321, 1000):
        before = store.calls
        proof = M.consistency_proof(m, n, store)
        assert store.calls - before <= bound
        assert M.verify_consistency(m, n, M.root(m, store), r, proof)
