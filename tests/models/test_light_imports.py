"""Importing a light module loads no database layer, and the mapped classes still all load when used.

Each check runs in a fresh interpreter: this one has long loaded everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy.engine import make_url

from helpdesk.settings.urls import database_url
from models.urls import parse_url
from tests.conftest import REPO_ROOT


def loaded_after(code: str) -> list[str]:
    """The SQLAlchemy modules and mapped modules of ours loaded after running `code`."""
    probe = (
        f"{code}\nimport json, sys\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy' or m == 'models.base')))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, env=env, check=True, timeout=60)
    loaded: list[str] = json.loads(done.stdout)
    return loaded


@pytest.mark.parametrize(
    "module",
    [
        "helpdesk.settings",
        "helpdesk.cli",
        "helpdesk.cli.ingest",
        "helpdesk.database",
        "helpdesk.files",
        "models",
    ],
)
def test_a_light_module_loads_no_sqlalchemy(module: str) -> None:
    assert loaded_after(f"import {module}") == []


def test_reading_the_settings_loads_no_sqlalchemy(tmp_path: os.PathLike[str]) -> None:
    code = (
        "from pathlib import Path\n"
        "from helpdesk.settings import load_settings\n"
        f"p = Path({str(tmp_path)!r}) / 'helpdesk.toml'\n"
        'p.write_text(\'[mail]\\naddress = "support@example.test"\\nsecret = "s"\\n'
        '[database]\\nurl = "sqlite:///var/helpdesk.db"\\n\')\n'
        "settings = load_settings(str(p))\n"
        "assert settings.database.url.startswith('sqlite:////'), settings.database.url\n"
    )
    assert loaded_after(code) == []


def test_one_mapped_class_brings_every_table_before_the_mappers_are_configured() -> None:
    code = (
        "from sqlalchemy.orm import configure_mappers\n"
        "from models.ticket import Ticket\n"
        "configure_mappers()\n"  # Ticket.messages names Message, which nobody imported
        "from models.base import Base\n"
        "import models\n"
        "assert models.Ticket is Ticket and models.Message.__tablename__ == 'messages'\n"
        "assert {'messages', 'raw_messages', 'daemons', 'web_sessions'} <= set(Base.metadata.tables)\n"
    )
    assert "sqlalchemy.orm" in loaded_after(code)


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    import models

    with pytest.raises(AttributeError):
        _ = models.NoSuchThing


URLS = [
    "sqlite:///var/helpdesk.db",
    "sqlite:////srv/desk/helpdesk.db",
    "sqlite:///my%20desk/h.db",
    "sqlite://",
    "sqlite:///:memory:",
    "sqlite+pysqlite:///var/h.db",
    "sqlite:///file:var/h.db?mode=ro&uri=true",
    "postgresql+psycopg://desk:p%40ss@db.example:5433/helpdesk?sslmode=require",
    "postgresql+psycopg://desk@[::1]/helpdesk",
    "postgresql+psycopg:///helpdesk?host=/run/postgresql",
    "postgresql://localhost/desk",
]


@pytest.mark.parametrize("url", URLS)
def test_a_url_reads_as_sqlalchemy_reads_it(url: str) -> None:
    mine = parse_url(url)
    theirs = make_url(url)
    assert mine is not None
    assert (mine.backend, mine.driver or None) == (
        theirs.get_backend_name(),
        url.partition("://")[0].partition("+")[2] or None,
    )
    assert (mine.username, mine.password, mine.host, mine.port, mine.database) == (
        theirs.username,
        theirs.password,
        theirs.host,
        theirs.port,
        theirs.database,
    )
    assert dict(mine.query) == dict(theirs.query)


@pytest.mark.parametrize("url", ["not a url", "postgresql+psycopg://h:port/x", "sqlite:///a.db?x=1&x=2"])
def test_what_it_cannot_read_is_sqlalchemys(url: str) -> None:
    parsed = parse_url(url)
    assert parsed is None or parsed.query  # the query's repeated keys: the caller defers


@pytest.mark.parametrize("url", URLS)
def test_a_relative_sqlite_file_resolves_as_before(url: str, tmp_path: os.PathLike[str]) -> None:
    from pathlib import Path

    base = Path(tmp_path) / "my desk"
    parsed = make_url(url)
    database = parsed.database
    if (
        parsed.get_backend_name() == "sqlite"
        and database
        and database != ":memory:"
        and not Path(database).is_absolute()
    ):
        expected = parsed.set(database=str(base / database)).render_as_string(hide_password=False)
    else:
        expected = url
    assert database_url(url, base) == expected
