"""Mail-derived text reaches the administrator's terminal without its control characters.

A subject such as ESC ] 0 ; pwned BEL ESC [ 2 J retitles and clears the terminal of whoever
lists the tickets, and U+202E (RIGHT-TO-LEFT OVERRIDE) shows them other text than is there.
Every readable listing takes them out; `--json` keeps every value as stored, escaped.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from sqlalchemy import select, update

from helpdesk.app import build_app
from helpdesk.cli import main
from helpdesk.cli.common import setup_logging
from helpdesk.settings import load_settings
from models.mailbox_state import MailboxConnState, MailboxState
from models.message import Attachment, Message
from models.raw_message import RawMessage, RawStatus
from models.ticket import Ticket, TicketEvent
from tests.cli.runner import run_json

TITLE_AND_CLEAR = "\x1b]0;pwned\x07\x1b[2J"
RLO = "\u202e"
HOSTILE = f"{TITLE_AND_CLEAR}{RLO}\x9b31m\x00\x08\u2028"
SUBJECT = f"Printer {TITLE_AND_CLEAR}broken {RLO}fdp.exe"
# Whatever a terminal acts on: C0 but LF and TAB, DEL, C1, the bidirectional controls, the
# Unicode line and paragraph separators.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def hostile_mail() -> bytes:
    """Raw UTF-8 headers (RFC 6532), so every character arrives as it is written here."""
    return (
        f'From: "Eve {TITLE_AND_CLEAR}{RLO}Admin" <eve@example.com>\r\n'
        "To: support@example.test\r\n"
        f"Subject: {SUBJECT}\r\n"
        "Message-ID: <hostile@example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="B"\r\n'
        "\r\n"
        "--B\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"The printer {TITLE_AND_CLEAR} is broken {RLO}again.\r\n"
        "--B\r\n"
        f'Content-Type: application/octet-stream; name="a{TITLE_AND_CLEAR}{RLO}fdp.exe"\r\n'
        f'Content-Disposition: attachment; filename="a{TITLE_AND_CLEAR}{RLO}fdp.exe"\r\n'
        "\r\n"
        "data\r\n"
        "--B--\r\n"
    ).encode()


def make_it_hostile(desk: Path) -> None:
    """Mail through ingest, then hostile text in every stored field a listing prints.

    The second step makes the listings' safety independent of what the parser keeps: rows
    stored by an older version, or text the parser has no reason to change, are printed too.
    """
    (desk / "hostile.eml").write_bytes(hostile_mail())
    (desk / "empty.eml").write_bytes(b"")  # quarantined: "empty"
    assert main(["ingest", str(desk / "hostile.eml"), str(desk / "empty.eml")]) == 0
    settings = load_settings(desk / "helpdesk.toml")
    with build_app(settings) as app, app.sessions() as session:
        session.execute(update(Ticket).values(subject=SUBJECT, requester_name=f"Eve {HOSTILE}"))
        session.execute(
            update(Message).values(
                subject=SUBJECT,
                from_name=f"Eve {HOSTILE}",
                text=f"body {HOSTILE}",
                new_text=f"body {HOSTILE}",
            )
        )
        session.execute(update(Attachment).values(filename=f"a{HOSTILE}fdp.exe"))
        session.execute(update(TicketEvent).values(reason=f"because {HOSTILE}"))
        session.execute(
            update(RawMessage)
            .where(RawMessage.status == RawStatus.FAILED)
            .values(
                error=f"cannot parse {HOSTILE}",
                envelope_from=f"eve{HOSTILE}@example.com",
                data=f"Subject: {SUBJECT}\r\n\r\nbody".encode(),
            )
        )
        session.add(
            MailboxState(
                name="support",
                state=MailboxConnState.BACKOFF,
                server="imap.example.test:993",
                last_error=f"the server said {HOSTILE}",
            )
        )
        session.commit()
    roster = desk / "people.toml"
    roster.write_text(
        '[[technician]]\nname = "Alicja \\u001b]0;pwned\\u0007\\u001b[2J\\u202eNowak"\n'
        'email = "alicja@example.test"\nlanguages = ["en"]\nshifts = ["24/7"]\nskills = { printing = 5 }\n'
        '[[coordinator]]\nname = "Marta \\u001b[2J\\u202e"\nemail = "coord@example.test"\n'
    )
    assert main(["technicians", "import", str(roster)]) == 0
    with (desk / "helpdesk.toml").open("a") as fh:  # the mailbox `status` lists
        fh.write('\n[[imap]]\nname = "support"\nhost = "imap.example.test"\nuser = "u"\npassword = "p"\n')


def output_of(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 0
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_readable_listings_carry_no_control_characters(
    desk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_it_hostile(desk)
    quarantined = run_json(capsys, "quarantine", "list", "--json")[0]["id"]
    commands = {
        "tickets list": (["tickets", "list"], ["Printer", "broken"]),
        "tickets show": (["tickets", "show", "1"], ["Printer", "Eve", "body", "fdp.exe", "because"]),
        "quarantine list": (["quarantine", "list"], ["cannot parse", "example.com"]),
        "quarantine show": (["quarantine", "show", str(quarantined)], ["cannot parse", "Printer"]),
        "status": (["status"], ["the server said"]),
        "report": (["report"], ["Printer"]),
        "technicians list": (["technicians", "list"], ["Alicja", "Marta"]),
    }
    for name, (argv, visible) in commands.items():
        text = output_of(capsys, *argv)
        assert UNSAFE.findall(text) == [], f"{name} printed control characters"
        for word in visible:
            assert word in text, f"{name} lost {word!r}:\n{text}"
    # The table still lines up: the subject cell is cut by its printable width, nothing else.
    listing = output_of(capsys, "tickets", "list").splitlines()
    assert listing[2].endswith("Printer broken fdp.exe")


def test_json_keeps_the_stored_values_escaped(desk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_it_hostile(desk)
    raw = output_of(capsys, "tickets", "show", "1", "--json")
    assert UNSAFE.findall(raw) == []  # \u escapes in the JSON text, never the characters themselves
    shown = json.loads(raw)
    assert shown["subject"] == SUBJECT
    assert shown["requester_name"] == f"Eve {HOSTILE}"
    assert shown["messages"][0]["attachments"][0]["filename"] == f"a{HOSTILE}fdp.exe"
    listing = json.loads(output_of(capsys, "tickets", "list", "--json"))
    assert listing[0]["subject"] == SUBJECT
    technicians = json.loads(output_of(capsys, "technicians", "list", "--json"))
    assert technicians["technicians"][0]["name"] == f"Alicja {TITLE_AND_CLEAR}{RLO}Nowak"


def test_log_lines_carry_no_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("INFO")
    try:
        logging.getLogger("helpdesk.test").warning("QUARANTINED raw=1: %s", f"bad subject {HOSTILE}")
    finally:
        logging.getLogger().handlers.clear()
    err = capsys.readouterr().err
    assert "QUARANTINED raw=1: bad subject" in err
    assert UNSAFE.findall(err) == []


def test_quarantine_show_raw_still_gives_the_bytes_as_received(
    desk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_it_hostile(desk)
    with build_app(load_settings(desk / "helpdesk.toml")) as app, app.readers() as session:
        raw_id = session.scalars(select(RawMessage.id).where(RawMessage.status == RawStatus.FAILED)).one()
    capsys.readouterr()
    assert main(["quarantine", "show", str(raw_id), "--raw"]) == 0  # to a pipe or file: the bytes
    assert capsys.readouterr().out == f"Subject: {SUBJECT}\r\n\r\nbody"
