"""compliance.lib.npz: an .npz is bounded before it is unpacked — by each member's size
in the zip directory and by each .npy header's shape × itemsize — and never raises
MemoryError; the disclosed-input upload and calibration sets go through it."""
from __future__ import annotations

import io
import time
import tracemalloc

import numpy as np
import pytest
from django.test import override_settings

from compliance.investigation.exports import load_npz
from compliance.lib import npz
from tests.fuzz.bombs import lying_header, npz_bytes, zeros_bomb

pytestmark = [pytest.mark.embedded]


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return zeros_bomb(256 * 1024 * 1024)  # 256 MiB of zeros in about 250 KB


def test_it_reads_a_plain_npz_exactly():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    y = np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3))
    arrays = npz.load(io.BytesIO(npz_bytes(x=x, y=y, empty=np.zeros((0, 3)))))
    assert set(arrays) == {"x", "y", "empty"}
    assert np.array_equal(arrays["x"], x) and arrays["x"].dtype == np.float32
    assert np.array_equal(arrays["y"], y) and arrays["empty"].shape == (0, 3)


def test_it_refuses_a_zip_bomb_before_unpacking_it(bomb):
    assert len(bomb) < 2 * 1024 * 1024
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(npz.NpzRefused, match="unpacks to 268435584 bytes, more than the 16777216 byte limit per array"):
            npz.load(io.BytesIO(bomb))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 1
    assert peak < 8 * 1024 * 1024


def test_it_refuses_a_header_that_declares_more_than_the_limit_even_if_the_zip_says_little():
    data = lying_header((1 << 40,), "<f8")
    tracemalloc.start()
    try:
        with pytest.raises(npz.NpzRefused, match="declares 8796093022208 bytes"):
            npz.load(io.BytesIO(data))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024


def test_it_refuses_a_member_shorter_than_its_header_says():
    with pytest.raises(npz.NpzRefused, match="truncated"):
        npz.load(io.BytesIO(lying_header((1000,), "<f8")))


@pytest.mark.parametrize("data,message", [
    (b"not a zip", "not an .npz file"),
    (b"", "not an .npz file"),
    (lying_header((2,), "|O"), "only plain numeric or string arrays"),
    (npz_bytes(x=np.zeros(3))[:-30], "not an .npz file"),
])
def test_it_refuses_malformed_archives_with_one_line(data, message):
    with pytest.raises(npz.NpzRefused, match=message) as refused:
        npz.load(io.BytesIO(data))
    assert "\n" not in str(refused.value)


def test_it_bounds_the_whole_file_as_well_as_each_array():
    data = npz_bytes(a=np.zeros(1000), b=np.zeros(1000))  # 8000 bytes each
    assert set(npz.load(io.BytesIO(data), max_tensor_bytes=8000, max_total_bytes=16000)) == {"a", "b"}
    with pytest.raises(npz.NpzRefused, match="byte limit"):
        npz.load(io.BytesIO(data), max_tensor_bytes=8000, max_total_bytes=12000)
    with override_settings(TRACELEDGER_MAX_TENSOR_BYTES=7999):
        with pytest.raises(npz.NpzRefused, match="7999 byte limit per array"):
            npz.load(io.BytesIO(data))


def test_the_disclosed_input_loader_refuses_the_bomb_as_a_value_error(bomb):
    with pytest.raises(ValueError, match="cannot read the disclosed input: array 'X' unpacks to"):
        load_npz(io.BytesIO(bomb))


def test_a_memory_error_never_escapes(monkeypatch):
    def no_memory(*_args, **_kwargs):
        raise MemoryError

    monkeypatch.setattr(npz, "bytearray", no_memory, raising=False)
    with pytest.raises(npz.NpzRefused, match="does not fit in memory"):
        npz.load(io.BytesIO(npz_bytes(x=np.zeros(3))))
