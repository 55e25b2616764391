"""A mail's thread keys as the 64-bit hashes models/thread_keys.py stores and the stores lock on.

Apart from the mapped table so that the piped ingest's DBAPI store (intake/pipe_store.py) hashes
them by the same code without loading SQLAlchemy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

# A mail with a longer References list is still ordered by its first and latest ids.
MAX_KEYS = 24


def key_of(value: str) -> int:
    """A stable signed 64-bit hash of one thread key (a Message-ID, or "tag:" and a plus-address tag)."""
    return int.from_bytes(hashlib.sha256(value.encode("utf-8", "replace")).digest()[:8], "big", signed=True)


def keys_of(values: Iterable[str]) -> list[int]:
    """The distinct hashes of `values`, at most MAX_KEYS (the first ones: own id, parent, root)."""
    seen: dict[int, None] = {}
    for value in values:
        if value:
            seen.setdefault(key_of(value), None)
        if len(seen) >= MAX_KEYS:
            break
    return list(seen)
