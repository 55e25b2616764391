"""The schema revision this version expects, read from the migration files themselves.

The one source of truth for "is the database current?": the daemon, the commands and a piped
`helpdesk ingest` (which checks it with the DBAPI alone) all compare the database's
`alembic_version` with `head_revision()`. Reading two lines per file spares them loading Alembic,
which only `helpdesk init` needs.
"""

from __future__ import annotations

import re
from pathlib import Path

MIGRATIONS = Path(__file__).with_name("migrations")

_REVISION = re.compile(r"^(down_revision|revision)\s*=\s*['\"]?([\w-]+|None)['\"]?\s*$", re.MULTILINE)


def head_revision() -> str | None:
    """The newest migration (a linear history); None when the files do not make one head."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for key, value in _REVISION.findall(path.read_text(encoding="utf-8")):
            (revisions if key == "revision" else parents).add(value)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None
