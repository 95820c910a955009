"""Long command-line work shows progress (done, total, rate, time left) on a terminal,
and nothing but its JSON off one."""
from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.terminal import Terminal, counted

pytestmark = [pytest.mark.embedded]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def embedded_home(tmp_path_factory):
    """A migrated embedded database with a small signed ledger, in its own home."""
    home = tmp_path_factory.mktemp("progress-home")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env |= {"TRACELEDGER_HOME": str(home), "COLUMNS": "120"}
    for args in (["migrate", "--noinput", "-v", "0"], ["checkpoint"]):
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)
    return env


def test_it_shows_verify_ledger_progress_on_a_terminal(embedded_home):
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a 120-column terminal
    try:
        done = subprocess.run([sys.executable, "manage.py", "verify_ledger", "--json"], cwd=ROOT, env=embedded_home,
                              stdout=subprocess.PIPE, stderr=follower, timeout=120)
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    assert done.returncode == 0
    assert json.loads(done.stdout)["ok"] is True  # stdout stays one JSON object
    text = shown.decode(errors="replace")
    assert "verifying ledger" in text and "entries/s" in text and "100%" in text, text


def test_it_shows_no_progress_off_a_terminal(embedded_home):
    done = subprocess.run([sys.executable, "manage.py", "verify_ledger", "--json"], cwd=ROOT, env=embedded_home,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == ""
    assert json.loads(done.stdout)["ok"] is True



@pytest.mark.django_db
def test_a_command_draws_its_bar_on_its_own_stderr():
    """ContractCommand.progress writes to the command's stderr (call_command(stderr=...)),
    whole lines of tqdm's carriage-return updates, and never to stdout."""
    from django.core.management import call_command

    from compliance.ledger import checkpoints, ledger

    ledger.append("trace.viewed", {"n": 1})
    checkpoints.make_checkpoint()
    out, err = io.StringIO(), Terminal()
    call_command("verify_ledger", "--json", "--workers", "1", stdout=out, stderr=err)
    assert json.loads(out.getvalue())["ok"] is True
    assert "verifying ledger" in err.getvalue() and "entries/s" in err.getvalue() and "\r" in err.getvalue()
    out, err = io.StringIO(), io.StringIO()
    call_command("verify_ledger", "--json", "--workers", "1", stdout=out, stderr=err)
    assert json.loads(out.getvalue())["ok"] is True and err.getvalue() == ""


def test_a_bar_can_follow_a_count_from_a_thread():
    """How bench provenance shows its ingest without touching the timed loop: a thread
    reads how many are done; off a terminal there is no thread and no read."""
    import threading
    import time

    from compliance.lib.progress import progress

    done, reads = [0], []

    def read():
        reads.append(done[0])
        return done[0]

    err = Terminal()
    with progress(50, "ingesting records", unit="rec", stream=err) as bar, bar.following(read, every=0.01):
        for _ in range(5):
            done[0] += 10
            time.sleep(0.05)
    assert counted(50, 50) in err.getvalue() and len(reads) > 2, err.getvalue()
    assert not any(t.name == "progress" for t in threading.enumerate())

    reads.clear()
    quiet = io.StringIO()
    with progress(50, "ingesting records", stream=quiet) as bar, bar.following(read, every=0.01):
        done[0] += 10
        time.sleep(0.05)
    assert reads == [] and quiet.getvalue() == ""
