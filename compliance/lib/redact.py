"""Error messages for clients name no server path (issue 22, finding 5): a refused
upload or a failed build used to tell a caller where the store and the keys live.
The full message goes to the log; the client gets the reason in words."""
from __future__ import annotations

import re

# An absolute POSIX path of two or more segments, not part of a URL or a relative path.
ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/-])/(?:[^\s'\"/()\[\],;:]+/)+[^\s'\"/()\[\],;:]*")
PLACEHOLDER = "<server path>"


def redact_paths(text: str) -> str:
    """`text` with every absolute filesystem path replaced by a placeholder."""
    return ABSOLUTE_PATH.sub(PLACEHOLDER, text or "")
