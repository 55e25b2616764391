"""The piped ingest's DBAPI store writes the rows `RawStore` writes, column by column, on both databases.

One sequence of mails (thread keys and a plus-address tag, an exact re-delivery, a reused
Message-ID with other content and its re-delivery, a mail without a Message-ID twice, one from an
IMAP source key, a bounce, a backfilled one, a refused one straight into the quarantine) goes
through `RawStore` and is read back as the driver returns it; the tables are emptied; the same
sequence goes through `PipeStore`, and both readings must be equal but for the ids (compared by
position) and the moment of storing (compared by form).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from intake.pipe_store import PipeStore
from intake.raw_keys import Incoming, StoreResult
from intake.raw_queue import RawStore
from models.db import DatabaseConfig, create_db_engine, migrate, session_factory
from models.revision import MIGRATIONS, head_revision
from tests.conftest import REPO_ROOT
from tests.mail import SUPPORT, make_mail

ROOT = make_mail(message_id="<root@example.com>", body="The printer is broken.")
REPLY = make_mail(
    message_id="<reply@example.com>",
    in_reply_to="<root@example.com>",
    references=["<root@example.com>", "<middle@example.com>", "<parent@example.com>"],
    body="Still broken.",
)
REUSED = ROOT.replace(b"The printer is broken.", b"Another mail, the same Message-ID.")
NO_ID = b"From: a@example.com\r\nTo: support@example.test\r\nSubject: no id\r\n\r\nbody\r\n"
BOUNCE = make_mail(sender="MAILER-DAEMON@example.net", message_id="<dsn@example.net>")

SEQUENCE = [
    Incoming(ROOT, "ingest", envelope_from="alice@example.com", envelope_to=(SUPPORT,)),
    Incoming(REPLY, "ingest", envelope_from="alice@example.com", envelope_to=("support+t7@example.test",)),
    Incoming(b"Received: by relay\r\n" + ROOT, "ingest", envelope_to=(SUPPORT,)),  # a re-delivery
    Incoming(REUSED, "smtp", envelope_from="bob@example.com", envelope_to=(SUPPORT,)),
    Incoming(REUSED, "smtp", envelope_from="bob@example.com", envelope_to=(SUPPORT,)),  # again
    Incoming(NO_ID, "ingest"),
    Incoming(NO_ID.replace(b"\r\n", b"\n"), "ingest"),  # the same content
    Incoming(NO_ID.replace(b"body", b"other"), "imap:support", source_key="imap:support:7:1"),
    Incoming(NO_ID.replace(b"body", b"other"), "imap:support", source_key="imap:support:7:1"),  # re-fetched
    Incoming(BOUNCE, "smtp", envelope_from="", envelope_to=(SUPPORT,)),
    Incoming(make_mail(message_id="<old@example.com>"), "imap:support", backfill=True),
    Incoming(b"From: x@example.com\r\n\r\n" + b"x" * 100, "smtp", refused="over the size limit", size=9_999),
]
TIMESTAMPS = ("received_at", "processed_at")


def rows(engine: Engine) -> tuple[list[dict[str, Any]], list[tuple[int, int]]]:
    """Every raw_messages row as the driver returns it, ids replaced by positions; the thread keys
    as (position of their mail, key)."""
    with engine.connect() as connection:
        raw = [dict(r._mapping) for r in connection.exec_driver_sql("SELECT * FROM raw_messages ORDER BY id")]
        keys = connection.exec_driver_sql("SELECT raw_id, key FROM raw_thread_keys ORDER BY id").all()
    position = {row["id"]: index for index, row in enumerate(raw)}
    for row in raw:
        row["id"] = position[row["id"]]
        for column in TIMESTAMPS:  # a moment of its own each run: compared by form
            value = row[column]
            row[column] = type(value).__name__ if isinstance(value, datetime) else _form(value)
    return raw, [(position[raw_id], key) for raw_id, key in keys]


def _form(value: object) -> object:
    """The shape of a timestamp SQLite keeps as text: its length and where its separators are."""
    if not isinstance(value, str):
        return value
    return len(value), [i for i, c in enumerate(value) if not c.isdigit()]


def positions(results: list[StoreResult], engine: Engine) -> list[tuple[int | None, bool]]:
    with engine.connect() as connection:
        ids = [r[0] for r in connection.exec_driver_sql("SELECT id FROM raw_messages ORDER BY id")]
    return [(ids.index(r.raw_id) if r.raw_id is not None else None, r.duplicate) for r in results]


def test_the_dbapi_store_writes_the_rows_raw_store_writes(engine: Engine, db_url: str) -> None:
    raw_store = RawStore(session_factory(engine))
    by_sqlalchemy = [next(iter(raw_store.store_many([mail]))) for mail in SEQUENCE]
    expected = rows(engine), positions(by_sqlalchemy, engine)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM raw_thread_keys"))
        connection.execute(text("DELETE FROM raw_messages"))

    store = PipeStore.open(DatabaseConfig(url=db_url, sqlite_synchronous="NORMAL"))
    assert store is not None
    with store:
        assert store.schema_revision() == head_revision()
        by_dbapi = [store.store(mail) for mail in SEQUENCE]
    got = rows(engine), positions(by_dbapi, engine)

    assert [r.duplicate for r in by_dbapi] == [False, False, True, False, True, False, True, False, True] + [
        False
    ] * 3
    assert got[1] == expected[1]  # the same results, pointing at the same rows
    assert got[0][1] == expected[0][1]  # the same thread keys for the same mails
    assert len(got[0][0]) == len(expected[0][0]) == 8
    for mine, theirs in zip(got[0][0], expected[0][0], strict=True):
        assert mine == theirs
    if engine.dialect.name == "postgresql":
        assert got[0][1], "no thread keys written on PostgreSQL"


def test_an_empty_database_has_no_revision(tmp_path: Path) -> None:
    (tmp_path / "empty.db").touch()
    store = PipeStore.open(DatabaseConfig(url=f"sqlite:///{tmp_path / 'empty.db'}"))
    assert store is not None
    with store:
        assert store.schema_revision() is None


def test_urls_it_does_not_read_are_left_to_the_full_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    for url in (
        f"sqlite:///{missing}",  # no file: the full path says "not initialised"
        f"sqlite:///file:{tmp_path / 'x.db'}?mode=ro&uri=true",
        "postgresql://localhost/desk",  # psycopg2, SQLAlchemy's default driver
        "postgresql+psycopg://nobody@127.0.0.1:1/none",  # nothing listens: the full path's error
        "mysql://localhost/desk",
    ):
        assert PipeStore.open(DatabaseConfig(url=url)) is None, url
    assert not missing.exists()


def test_the_expected_revision_is_alembics_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    assert head_revision() == script.get_current_head()


def test_a_piped_store_and_hand_off_import_no_sqlalchemy(tmp_path: Path, engine: Engine, db_url: str) -> None:
    """The modules the piped ingest loads to store and hand off, in a fresh interpreter."""
    code = (
        "import json, sys\n"
        "from helpdesk.settings import load_settings\n"
        "from helpdesk.cli import ingest\n"
        "from intake.pipe_store import PipeStore\n"
        "from models.config import DatabaseConfig\n"
        "from intake.raw_keys import Incoming\n"
        "store = PipeStore.open(DatabaseConfig(url=sys.argv[1]))\n"
        "store.store(Incoming(b'Message-ID: <m@x>\\r\\n\\r\\nhi', 'ingest'))\n"
        "store.live_daemons(); store.announce(); store.close()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'alembic'))))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code, db_url], capture_output=True, env=env, check=True, timeout=60
    )
    assert json.loads(done.stdout) == []


def test_a_piped_store_waits_for_a_related_store_on_postgresql(pg_url: str) -> None:
    """As RawStore's (tests/models/test_scale_out_parts.py): a reply's store is open in another
    daemon; the piped root of its conversation waits for it, so ids follow commit order, while an
    unrelated piped mail does not wait."""
    engine = create_db_engine(DatabaseConfig(url=pg_url))
    migrate(engine)
    sessions = session_factory(engine)
    config = DatabaseConfig(url=pg_url)
    done: list[int] = []

    def store_root() -> None:
        with PipeStore.open(config) as store:  # type: ignore[union-attr]
            result = store.store(Incoming(ROOT, "ingest", envelope_to=(SUPPORT,)))
        assert result.raw_id is not None
        done.append(result.raw_id)

    try:
        with sessions() as held:
            reply = RawStore(sessions)._store_in(held, Incoming(REPLY, "smtp", envelope_to=(SUPPORT,)))
            assert reply.raw_id is not None
            racing = threading.Thread(target=store_root)
            racing.start()
            racing.join(1.5)
            assert racing.is_alive() and not done  # waiting on the reply's thread keys
            with PipeStore.open(config) as other:  # type: ignore[union-attr]
                assert not other.store(Incoming(BOUNCE, "ingest", envelope_to=(SUPPORT,))).duplicate
            held.commit()
        racing.join(10)
        assert not racing.is_alive() and len(done) == 1
        assert reply.raw_id < done[0]
    finally:
        engine.dispose()
