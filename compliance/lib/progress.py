"""Progress of long command-line work (tqdm): done and total, rate and time left, on
stderr and only when stderr is a terminal, so `--json` on stdout and logs stay clean.

    with progress(total, "verifying", unit="entries") as bar:
        bar.update(n)            # or pass bar.advance_to as a callback: advance_to(done, total)

    with progress(total, "ingesting", unit="rec") as bar, bar.following(lambda: sink.delivered):
        ...                      # a timed loop: a thread reads the count twice a second
"""
from __future__ import annotations

import sys
import threading
from contextlib import contextmanager


class Progress:
    """A tqdm bar, or nothing at all off a terminal."""

    def __init__(self, bar):
        self.bar = bar

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def advance_to(self, done: int, total: int | None = None) -> None:
        """Callback form for code that reports (done, total) and imports nothing of this."""
        if self.bar is None:
            return
        if total is not None and total != self.bar.total:
            self.bar.total = total
            self.bar.refresh()
        self.bar.update(max(0, done - self.bar.n))

    @contextmanager
    def following(self, read, every: float = 0.5):
        """While the block runs, move the bar to `read()` (how many are done) every
        `every` seconds from a thread of its own, so that a measured loop carries no
        progress code at all; off a terminal, no thread."""
        if self.bar is None:
            yield self
            return
        stop = threading.Event()

        def follow():
            while not stop.wait(every):
                self.advance_to(read())

        thread = threading.Thread(target=follow, name="progress", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
            self.advance_to(read())

    def describe(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_description_str(text)


def on_terminal(stream=None) -> bool:
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


@contextmanager
def progress(total: int | None, description: str, *, unit: str = "it", stream=None, enabled: bool | None = None):
    stream = stream or sys.stderr
    if enabled is None:
        enabled = on_terminal(stream)
    if not enabled:
        yield Progress(None)
        return
    from tqdm import tqdm

    bar = tqdm(total=total, desc=description, unit=unit, unit_scale=True, file=stream, dynamic_ncols=True,
               smoothing=0.1, mininterval=0.25)
    try:
        yield Progress(bar)
    finally:
        bar.close()
