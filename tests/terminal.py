"""A stand-in terminal for progress bars (compliance.lib.progress draws only on one)."""
from __future__ import annotations

import io


class Terminal(io.StringIO):
    """A stderr that says it is a terminal, so progress bars are drawn into it."""

    def isatty(self) -> bool:
        return True


def counted(done: int, total: int) -> str:
    """"done/total" as the bar writes it, in tqdm's unit scale (3 is 3.00, 50 is 50.0,
    300 is 300, 20000 is 20.0k)."""
    from tqdm import tqdm

    return f"{tqdm.format_sizeof(done)}/{tqdm.format_sizeof(total)}"
