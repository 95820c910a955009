"""The local spool and the spooling recorder: acknowledged means on disk, a torn tail
is skipped (and kept), a failing sink loses nothing, a full buffer makes callers wait,
a refused record is set aside, a restarted process replays what is left."""
from __future__ import annotations

import threading
import time

import pytest

from inference.provenance.spool import MAGIC, Rejected, Spool
from inference.provenance.spooling_recorder import SpoolingRecorder

pytestmark = pytest.mark.embedded


def recorder(tmp_path, sink, **kw):
    options = dict(sink=sink, encode=lambda s: s.encode(), decode=lambda b: b.decode(), batch=50, interval_s=0.01,
                   backoff_max_s=0.05)
    return SpoolingRecorder(tmp_path, **(options | kw))


def test_it_replays_acknowledged_frames_after_a_restart(tmp_path):
    spool = Spool(tmp_path)
    spool.append([b"one", b"two"])
    spool.append([b"three"])
    spool.close()  # the process ends before delivering anything

    again = Spool(tmp_path)
    segment = again.next_pending()
    payloads, offset = again.read(segment, 10)
    assert payloads == [b"one", b"two", b"three"]
    assert again.depth()[0] == 3
    again.commit(segment, offset, len(payloads))
    assert again.depth() == (0, 0, None)
    assert not list(again.dir.glob("*.seg"))  # a delivered, sealed segment is deleted


def test_it_skips_a_torn_tail_and_keeps_its_bytes(tmp_path):
    spool = Spool(tmp_path)
    spool.append([b"kept-1", b"kept-2"])
    path = spool.segments[-1].path
    spool.close()
    with open(path, "ab") as f:  # a crash in the middle of the next append
        f.write(b"\x20\x00\x00\x00\x01\x02\x03\x04half a fra")

    again = Spool(tmp_path)
    segment = again.next_pending()
    payloads, offset = again.read(segment, 10)
    assert payloads == [b"kept-1", b"kept-2"]
    again.commit(segment, offset, len(payloads))
    assert again.torn_bytes == 18
    damaged = list((again.dir / "damaged").glob("*.bin"))
    assert [p.read_bytes() for p in damaged] == [b"\x20\x00\x00\x00\x01\x02\x03\x04half a fra"]
    assert again.next_pending() is None


def test_it_detects_a_corrupted_frame_by_its_checksum(tmp_path):
    spool = Spool(tmp_path)
    spool.append([b"good", b"flipped", b"after"])
    path = spool.segments[-1].path
    spool.close()
    data = bytearray(path.read_bytes())
    data[data.index(b"flipped")] ^= 0x01
    path.write_bytes(bytes(data))

    again = Spool(tmp_path)
    payloads, _ = again.read(again.next_pending(), 10)
    assert payloads == [b"good"]
    assert b"flipped"[1:] in list((again.dir / "damaged").glob("*.bin"))[0].read_bytes()


def test_it_takes_the_slot_a_dead_process_left_records_in(tmp_path):
    first = Spool(tmp_path)  # slot-0, still held
    second = Spool(tmp_path)  # slot-1
    second.append([b"left behind"])
    second.close()  # its process is gone
    third = Spool(tmp_path)
    assert third.dir == second.dir != first.dir
    assert third.read(third.next_pending(), 10)[0] == [b"left behind"]


def test_it_delivers_everything_through_a_failing_sink(tmp_path):
    delivered: list[str] = []
    failures = {"left": 5}

    def flaky(items):
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("database is away")
        delivered.extend(items)

    r = recorder(tmp_path, flaky)
    for i in range(500):
        r.record(f"r{i}")
    assert r.drain(timeout=30)
    assert delivered == [f"r{i}" for i in range(500)]
    m = r.metrics()
    assert m["delivery_failures"] == 5 and m["delivered"] == 500 and m["spool_depth"] == 0
    assert "database is away" in m["last_error"]
    assert r.close()
    assert not list(tmp_path.glob("slot-*/*.seg"))


def test_it_makes_callers_wait_when_the_buffer_is_full_and_counts_it(tmp_path):
    spooler_stuck, disk_back = threading.Event(), threading.Event()
    delivered: list[str] = []

    def slow_encode(item: str) -> bytes:
        spooler_stuck.set()
        disk_back.wait()  # the spool cannot keep up
        return item.encode()

    r = recorder(tmp_path, delivered.extend, encode=slow_encode, buffer_max=10, batch=5)
    r.record("first")
    assert spooler_stuck.wait(5)
    for i in range(10):  # fills the buffer without waiting
        r.record(f"r{i}")
    assert r.blocked_calls == 0
    caller = threading.Thread(target=r.record, args=("waits",))
    caller.start()
    time.sleep(0.3)
    assert caller.is_alive() and r.blocked_calls == 1
    assert r.metrics()["buffer_depth"] == 11
    disk_back.set()
    caller.join(timeout=10)
    assert not caller.is_alive()
    assert r.drain(timeout=10)
    assert sorted(delivered) == sorted(["first", "waits"] + [f"r{i}" for i in range(10)])  # nothing dropped
    r.close()


def test_it_sets_aside_a_record_the_sink_refuses_for_good(tmp_path):
    delivered: list[str] = []

    def picky(items):
        if "poison" in items:
            raise Rejected("deployment 99 does not exist")
        delivered.extend(items)

    r = recorder(tmp_path, picky)
    for item in ["a", "b", "poison", "c", "d"]:
        r.record(item)
    assert r.drain(timeout=10)
    assert delivered == ["a", "b", "c", "d"]
    rejected = (r.spool.dir / "rejected" / "rejected.jsonl").read_text()
    assert "poison" in rejected and "deployment 99 does not exist" in rejected
    assert r.metrics()["rejected"] == 1
    r.close()


def test_it_acknowledges_only_what_is_on_disk(tmp_path):
    acknowledged: list[str] = []
    r = recorder(tmp_path, lambda items: None, on_durable=acknowledged.extend)
    r.record("x")
    assert r.flush(timeout=5)
    assert acknowledged == ["x"]
    segment = next(tmp_path.glob("slot-*/*.seg"))
    assert segment.read_bytes().startswith(MAGIC) and segment.read_bytes().endswith(b"x")
    r.close()
    assert oct(segment.parent.stat().st_mode & 0o777) == "0o700"


def test_it_moves_to_a_new_segment_when_its_segment_is_removed_behind_its_back(tmp_path):
    gate = threading.Event()
    delivered: list[str] = []

    def waiting_sink(items):
        gate.wait()
        delivered.extend(items)

    r = recorder(tmp_path, waiting_sink)
    for i in range(10):
        r.record(f"early-{i}")
    assert r.flush(timeout=5)
    time.sleep(0.1)  # the shipper has read them and waits on the sink
    for segment in tmp_path.glob("slot-*/*.seg"):
        segment.unlink()  # an operator's clean-up, say
    for i in range(10):
        r.record(f"late-{i}")  # written after the removal: must not go to the dead file
    assert r.flush(timeout=5)
    gate.set()
    assert r.drain(timeout=10)
    m = r.metrics()
    assert sorted(delivered) == sorted([f"early-{i}" for i in range(10)] + [f"late-{i}" for i in range(10)])
    assert m["lost"] == 0 and m["spool_errors"] == 1
    assert len(list(tmp_path.glob("slot-*/*.seg"))) <= 1
    r.close()


class PipelinedSink:
    """A sink with submit/wait, as the shipper processes are: several batches in
    flight; every third wait of the first few fails; a batch holding b"poison" is
    refused. Stores like the database: a payload delivered twice is kept once."""

    depth = 3

    def __init__(self):
        self.stored: set[bytes] = set()
        self.outstanding = self.most_outstanding = self.waits = 0
        self.failures_left = 4

    def submit(self, payloads):
        self.outstanding += 1
        self.most_outstanding = max(self.most_outstanding, self.outstanding)
        return list(payloads)

    def wait(self, ticket):
        self.outstanding -= 1
        self.waits += 1
        if self.failures_left and self.waits % 3 == 0:
            self.failures_left -= 1
            raise ConnectionError("database is away")
        if b"poison" in ticket:
            raise Rejected("deployment 99 does not exist")
        self.stored.update(ticket)

    def __call__(self, payloads):
        self.wait(self.submit(payloads))


def test_a_pipelined_sink_gets_batches_read_ahead_across_segments_and_loses_nothing(tmp_path):
    sink = PipelinedSink()
    r = recorder(tmp_path, sink, decode=None, batch=20)
    r.spool.segment_bytes = 400  # a segment every few dozen records: read-ahead crosses them
    items = [f"r{i:04d}" for i in range(600)]
    items[333] = "poison"
    for item in items:
        r.record(item)
    assert r.drain(timeout=30)
    assert sink.most_outstanding >= 2  # batches were in flight together
    assert sink.stored == {i.encode() for i in items} - {b"poison"}
    rejected = (r.spool.dir / "rejected" / "rejected.jsonl").read_text()
    assert "poison" in rejected and r.metrics()["rejected"] == 1
    m = r.metrics()
    assert m["delivery_failures"] == 4 and m["spool_depth"] == 0
    assert r.close()
    assert not list(tmp_path.glob("slot-*/*.seg"))
