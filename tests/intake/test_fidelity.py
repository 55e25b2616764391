"""Real-world mail read right (issue 10): every sender, name, subject, body and attachment of the
fidelity corpus as a careful reader takes them, in every charset; the same names on every run."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from helpdesk.app import App
from intake.config import IntakeConfig
from intake.parse import parse_email
from models.message import Message
from models.ticket import Ticket
from tests.conftest import deliver
from tests.intake.fidelity_corpus import CORPUS, CORPUS_DIR


def read(name: str) -> bytes:
    return (CORPUS_DIR / name).read_bytes()


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_mail_is_read_as_a_careful_reader_reads_it(name: str) -> None:
    expected = CORPUS[name]
    mail = parse_email(read(name), IntakeConfig())
    assert mail.from_ is not None, name
    assert (mail.from_.addr, mail.from_.name) == (expected.sender, expected.name)
    assert mail.subject == expected.subject
    assert expected.body in mail.text, mail.text[:500]
    assert tuple(a.filename for a in mail.attachments) == expected.attachments


def test_every_corpus_file_has_its_values_written_down() -> None:
    assert {p.name for p in CORPUS_DIR.glob("*.eml")} == set(CORPUS)
    classes = {name.split("-", 1)[0] for name in CORPUS}
    assert classes == {"charset", "body", "sender", "header", "attachment"}


@pytest.mark.parametrize("name", sorted(n for n in CORPUS if n.startswith("attachment-")))
def test_attachments_have_the_same_names_and_bytes_on_every_run(name: str) -> None:
    first = parse_email(read(name), IntakeConfig())
    second = parse_email(read(name), IntakeConfig())
    assert [(a.filename, a.sha256) for a in first.attachments] == [
        (a.filename, a.sha256) for a in second.attachments
    ]
    assert all(a.content is not None and a.size > 0 for a in first.attachments)


def test_an_attached_mail_is_kept_whole_and_its_text_is_not_the_body() -> None:
    mail = parse_email(read("attachment-forwarded-message-outlook.eml"), IntakeConfig())
    (attached,) = mail.attachments
    assert attached.content_type == "message/rfc822"
    assert attached.content is not None
    assert b"Subject: Invoice 2025-11-0042 overdue" in attached.content
    assert "Pay now" not in mail.text


def test_an_encoded_word_never_becomes_an_address() -> None:
    # RFC 2047 section 5: "ceo@bank.example" is only the decoded text of the From header.
    mail = parse_email(read("sender-encoded-word-address-not-decoded.eml"), IntakeConfig())
    addresses = {a.addr for a in (*mail.to, *mail.cc, *mail.reply_to)} | {mail.sender}
    assert "ceo@bank.example" not in addresses


def test_the_repaired_header_block_is_noted_among_the_defects() -> None:
    mail = parse_email(read("header-broken-fold-before-from.eml"), IntakeConfig())
    assert any("joined to the header above" in d for d in mail.defects)
    assert "From:" not in mail.text


@pytest.mark.parametrize(
    "name",
    [
        "sender-no-address-in-from-reply-to-fallback.eml",
        "charset-shift-jis-raw-subject-and-name.eml",
        "header-first-line-not-a-header.eml",
        "charset-gbk-raw-display-name.eml",
    ],
)
def test_corpus_mail_opens_a_ticket_for_its_sender(app: App, name: str) -> None:
    expected = CORPUS[name]
    report = deliver(app, read(name))
    assert report.tickets_created == 1
    with app.sessions() as s:
        ticket = s.get(Ticket, report.ticket_ids[0])
        assert ticket is not None
        assert (ticket.requester, ticket.requester_name, ticket.subject) == (
            expected.sender,
            expected.name,
            expected.subject,
        )
        inbound = s.scalars(select(Message).where(Message.ticket_id == ticket.id)).first()
        assert inbound is not None
        assert expected.body in inbound.text


def test_corpus_directory_is_inside_tests_data() -> None:
    # Each quirk is a named file in tests/data (the fidelity corpus keeps its own folder there).
    assert CORPUS_DIR.parent == Path(__file__).resolve().parent.parent / "data"
