"""`helpdesk status` lists the daemons that share the database: host, pid, last heartbeat, what
each holds, and which have fallen silent (their claims are being given back)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from helpdesk.cli import main
from intake.raw_queue import RawStore
from models.base import utcnow
from models.db import DatabaseConfig, create_db_engine, session_factory
from models.heartbeat import beat
from models.leases import RAW_QUEUE
from tests.cli.runner import run_json
from tests.mail import make_mail


def test_status_lists_each_daemon_with_what_it_holds(desk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mail = desk / "one.eml"
    mail.write_bytes(make_mail(message_id="<held@example.com>"))
    assert run_json(capsys, "status", "--json")["daemons"] == []
    engine = create_db_engine(DatabaseConfig(url=f"sqlite:///{desk / 'var' / 'helpdesk.db'}"))
    sessions = session_factory(engine)
    now = utcnow()
    with sessions() as session:
        RawStore(sessions).store(mail.read_bytes(), source="smtp")
        RAW_QUEUE.claim(session, holder="mx2.example.test:4242", now=now, lease=timedelta(minutes=5), limit=5)
        beat(session, "mx2.example.test:4242", now - timedelta(minutes=1), now - timedelta(hours=1))
        beat(session, "mx1.example.test:17", now, now - timedelta(hours=2))
        session.commit()
    engine.dispose()
    daemons = run_json(capsys, "status", "--json")["daemons"]
    assert [(d["host"], d["pid"], d["silent"]) for d in daemons] == [
        ("mx1.example.test", 17, False),
        ("mx2.example.test", 4242, True),
    ]
    assert daemons[1]["holds"] == {"stored": 1, "outgoing": 0, "mailboxes": []}
    assert daemons[0]["last_heartbeat"] is not None
    assert main(["status"]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("daemon ")]
    assert lines[0].startswith("daemon mx1.example.test pid 17: last heartbeat ")
    assert "SILENT" in lines[1] and "holds 1 stored, 0 outgoing" in lines[1]
