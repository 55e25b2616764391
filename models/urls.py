"""Database URLs read without SQLAlchemy, for the paths that must not load it (the settings, a piped
mail, a listing).

The grammar is SQLAlchemy's own (`sqlalchemy.engine.url.make_url`, same pattern, same unquoting):
`dialect[+driver]://[user[:password]@][host][:port][/database][?query]`. A URL this reading does
not take (no match, a port that is no number) is left to SQLAlchemy, which gives the error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

_URL = re.compile(
    r"""
        (?P<name>[\w\+]+)://
        (?:
            (?P<username>[^:/]*)
            (?::(?P<password>[^@]*))?
        @)?
        (?:
            (?:
                \[(?P<ipv6host>[^/\?]+)\] |
                (?P<ipv4host>[^/:\?]+)
            )?
            (?::(?P<port>[^/\?]*))?
        )?
        (?:/(?P<database>[^\?]*))?
        (?:\?(?P<query>.*))?
    """,
    re.X,
)
IN_MEMORY = ":memory:"


@dataclass(frozen=True)
class DatabaseURL:
    """The parts of a database URL, as `sqlalchemy.engine.URL` gives them."""

    backend: str  # "sqlite", "postgresql"
    driver: str  # "" when the URL names none
    username: str | None = None
    password: str | None = None
    host: str | None = None
    port: int | None = None
    database: str | None = None
    query: tuple[tuple[str, str], ...] = field(default=())

    @property
    def sqlite_file(self) -> str | None:
        """The database file of a SQLite URL; None for another backend or an in-memory database."""
        if self.backend != "sqlite" or self.database in (None, "", IN_MEMORY):
            return None
        return self.database


def parse_url(url: str) -> DatabaseURL | None:
    """The parts of `url`, or None when only SQLAlchemy can tell what it is (or that it is wrong)."""
    match = _URL.match(url)
    if match is None:
        return None
    parts = match.groupdict()
    port: int | None = None
    if parts["port"]:
        if not parts["port"].isdigit():
            return None
        port = int(parts["port"])
    backend, _, driver = parts["name"].partition("+")
    return DatabaseURL(
        backend=backend,
        driver=driver,
        username=_unquoted(parts["username"]),
        password=_unquoted(parts["password"]),
        host=parts["ipv4host"] or parts["ipv6host"],
        port=port,
        database=_unquoted(parts["database"]),
        query=tuple(parse_qsl(parts["query"])) if parts["query"] is not None else (),
    )


def _unquoted(value: str | None) -> str | None:
    return unquote(value) if value is not None else None
