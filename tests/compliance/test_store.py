"""Pinned reads from the store: the bytes a caller uses are the bytes that were hashed,
through a mapping held under a read lease, or a private copy where no lease is granted."""
from __future__ import annotations

import hashlib
import os

import pytest

from compliance.lib.store import pinned

pytestmark = [pytest.mark.embedded]


@pytest.fixture
def stored(tmp_path):
    path = tmp_path / "engine.bin"
    path.write_bytes(os.urandom(3 << 20))
    os.chmod(path, 0o444)
    return path


def test_it_hashes_the_mapped_bytes_it_hands_on(stored):
    with pinned(stored) as pin:
        if not pin.mapped:
            pytest.skip("the kernel grants no read lease on this file system")
        assert isinstance(pin.data, memoryview) and pin.data.readonly
        assert pin.sha256 == hashlib.sha256(stored.read_bytes()).hexdigest() == hashlib.sha256(pin.data).hexdigest()
        assert pin.unchanged()


def test_its_path_is_the_file_it_hashed_even_after_a_rename_over_it(stored, tmp_path):
    with pinned(stored) as pin:
        if not pin.mapped:
            pytest.skip("the kernel grants no read lease on this file system")
        other = tmp_path / "other.bin"
        other.write_bytes(os.urandom(1024))
        os.replace(other, stored)  # a rename does not touch the file we hold
        with open(pin.path, "rb") as f:  # and reading it leaves the lease in place
            assert hashlib.sha256(f.read()).hexdigest() == pin.sha256
        assert pin.unchanged()


def test_it_reports_a_write_attempt_while_the_file_is_held(stored):
    os.chmod(stored, 0o644)
    with pinned(stored) as pin:
        if not pin.mapped:
            pytest.skip("the kernel grants no read lease on this file system")
        # A writer waits until the lease is let go; this one gives up at once, and the
        # attempt is recorded all the same.
        with pytest.raises(BlockingIOError):
            os.open(stored, os.O_WRONLY | os.O_NONBLOCK)
        assert not pin.unchanged()


def test_it_reads_a_private_copy_of_a_file_open_for_writing(stored):
    os.chmod(stored, 0o644)
    writer = os.open(stored, os.O_WRONLY)
    try:
        with pinned(stored) as pin:
            assert not pin.mapped and isinstance(pin.data, bytes) and pin.path is None
            assert pin.sha256 == hashlib.sha256(pin.data).hexdigest()
            os.pwrite(writer, b"changed", 0)  # the copy is ours: the file changing does not reach it
            assert pin.sha256 == hashlib.sha256(pin.data).hexdigest() and pin.unchanged()
    finally:
        os.close(writer)


def test_it_pins_an_empty_file_and_refuses_a_missing_one(tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pinned(empty) as pin:
        assert pin.data == b"" and pin.sha256 == hashlib.sha256(b"").hexdigest()
    with pytest.raises(FileNotFoundError):
        with pinned(tmp_path / "missing"):
            pass
