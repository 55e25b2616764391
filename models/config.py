"""The database settings models receives from the composition root (`[database]`).

Its own module, free of SQLAlchemy: reading the settings, which every command does first, must
not load the database layer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatabaseConfig:
    url: str
    # FULL survives power loss after the commit that preceded an SMTP 250; NORMAL only a crash.
    sqlite_synchronous: str = "FULL"
    sqlite_busy_timeout_ms: int = 30_000
    pool_size: int = 5
    echo: bool = False
