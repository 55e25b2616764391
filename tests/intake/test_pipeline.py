"""One mail through the pipeline: ticket, acknowledgment in the right thread and language, attachments, quarantine."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from helpdesk.app import App
from intake.pipeline import STAGES
from intake.raw_queue import requeue
from models.message import Attachment, Message
from models.outbox import OutboxMessage
from models.raw_message import RawMessage, RawStatus
from models.ticket import Ticket
from notify.tokens import verify
from tests.conftest import Clock, deliver
from tests.mail import make_mail, parse

DATA = Path(__file__).resolve().parent.parent / "data"


def the_ack(app: App) -> Any:
    with app.sessions() as s:
        return parse(s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "ack")).one().data)


def test_pipeline_reads_in_one_place() -> None:
    assert [s.name for s in STAGES] == [
        "parse",
        "automatic",
        "bounce",
        "authenticate",
        "thread",
        "staff_reply",
        "stranger",
        "append",
        "route",
        "open",
        "assign",
        "acknowledge",
    ]
    assert all(s.description for s in STAGES)


def test_new_mail_becomes_a_ticket_with_an_acknowledgment_in_its_thread(app: App) -> None:
    report = deliver(app, make_mail(message_id="<q1@example.com>", references=["<older@example.com>"]))
    assert report.tickets_created == 1
    number = report.ticket_ids[0]
    ack = the_ack(app)
    assert ack["Subject"] == f"Re: [#{number}] Printer on floor 3 does not print"
    assert ack["In-Reply-To"] == "<q1@example.com>"
    assert ack["References"] == "<older@example.com> <q1@example.com>"
    assert ack["Message-ID"].endswith("@example.test>")
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["To"].addresses[0].addr_spec == "alice@example.com"
    reply_to = ack["Reply-To"].addresses[0].addr_spec
    token = verify("test-secret", reply_to.split("+", 1)[1].split("@")[0])
    assert token is not None
    assert token.number == number
    assert f"#{number}" in ack.get_content()
    with app.sessions() as s:
        ticket = s.get(Ticket, number)
        assert ticket is not None
        assert ticket.status.value == "new"
        assert ticket.category == "triage"
        assert ticket.priority.value == "normal"
        assert ticket.requester == "alice@example.com"
        assert ticket.requester_name == "Alice Example"
        assert {m.direction for m in ticket.messages} == {"in", "out"}
        assert [e.kind for e in ticket.events][:2] == ["created", "routed"]


@pytest.mark.parametrize(
    ("body", "language", "phrase"),
    [
        ("Dzień dobry, drukarka nie drukuje od rana. Proszę o pomoc.", "pl", "Zarejestrowaliśmy zgłoszenie"),
        ("Guten Tag, der Drucker druckt seit heute Morgen nicht mehr. Bitte helfen Sie.", "de", "Ticket #"),
        ("Hello, the printer does not print since this morning, please help.", "en", "We have opened ticket"),
    ],
)
def test_acknowledgment_speaks_the_requesters_language(
    app: App, body: str, language: str, phrase: str
) -> None:
    report = deliver(app, make_mail(subject="Drucker / drukarka / printer", body=body))
    ack = the_ack(app)
    assert ack["Content-Language"] == language
    assert phrase.replace("#", f"#{report.ticket_ids[0]}") in ack.get_content()


def test_reply_to_header_is_honoured_for_the_acknowledgment(make_app: Any) -> None:
    # A web form's mail, authenticated for its domain by the MTA we trust: its Reply-To is the person.
    app = make_app(security={"trusted_authserv_ids": ["mx.example.test"]})
    form = make_mail(sender="noreply@forms.example", headers={"Reply-To": "Frank <frank@example.com>"})
    deliver(app, b"Authentication-Results: mx.example.test; dkim=pass header.d=forms.example\r\n" + form)
    assert the_ack(app)["To"].addresses[0].addr_spec == "frank@example.com"


def test_reply_to_in_another_domain_than_an_unauthenticated_from_is_not_answered(app: App) -> None:
    # Anyone can write any Reply-To: without proof of the From, the desk answers nobody it names.
    deliver(app, make_mail(sender="noreply@forms.example", headers={"Reply-To": "Frank <frank@example.com>"}))
    with app.sessions() as s:
        assert s.scalars(select(OutboxMessage)).all() == []  # and no-reply addresses get nothing


def test_attachments_over_the_caps_are_recorded_as_omitted(make_app: Any) -> None:
    app = make_app(intake={"max_attachment_size": 1000, "max_attachments": 2})
    mail = make_mail(
        attachments=[
            ("log.txt", "text/plain", b"a" * 100),
            ("../../etc/passwd", "application/octet-stream", b"b" * 5000),
            ("third.pdf", "application/pdf", b"c" * 10),
        ]
    )
    report = deliver(app, mail)
    assert report.tickets_created == 1
    with app.sessions() as s:
        atts = list(s.scalars(select(Attachment).order_by(Attachment.id)))
    assert [a.filename for a in atts] == ["log.txt", "passwd", "third.pdf"]
    assert atts[0].content == b"a" * 100
    assert atts[0].omitted is None
    assert atts[1].content is None
    assert atts[1].size == 5000
    assert atts[1].omitted is not None
    assert "larger than 1000" in atts[1].omitted
    assert atts[2].omitted is not None
    assert "more than 2" in atts[2].omitted


def test_a_mail_that_breaks_the_pipeline_is_quarantined_and_the_rest_carry_on(app: App) -> None:
    app.store.store(b"", source="smtp")  # nothing at all: nothing to open a ticket with
    app.store.store(make_mail(), source="smtp")
    report = app.worker.process_available()
    assert report.quarantined == 1
    assert report.tickets_created == 1
    with app.sessions() as s:
        failed = s.scalars(select(RawMessage).where(RawMessage.status == RawStatus.FAILED)).one()
        assert failed.error is not None
        assert "empty" in failed.error


def test_mail_without_any_sender_opens_a_ticket_nobody_is_answered(app: App) -> None:
    report = deliver(app, b"Subject: disk full on srv-12\r\n\r\n/var is at 100%\r\n")
    assert report.tickets_created == 1
    with app.sessions() as s:
        ticket = s.get(Ticket, report.ticket_ids[0])
        assert ticket is not None
        assert "no-sender" in ticket.tags
        assert not ticket.requester
        assert s.scalars(select(OutboxMessage)).first() is None


def test_quarantine_retry_processes_again(app: App) -> None:
    app.store.store(b"", source="smtp")
    report = app.worker.process_available()
    assert report.quarantined == 1
    with app.sessions() as s:
        raw = s.scalars(select(RawMessage)).one()
        raw.data = make_mail()  # e.g. an admin recovered the content from the MTA's queue
        s.commit()
    assert requeue(app.sessions) == 1
    again = app.worker.process_available()
    assert again.tickets_created == 1


def test_mail_the_worker_died_on_is_quarantined_after_max_attempts(app: App, clock: Clock) -> None:
    app.store.store(make_mail(), source="smtp")
    # Simulate a worker that claimed the mail and died three times (lease expired each time).
    for _ in range(app.settings.intake.max_attempts):
        ids = app.worker.claim(10)
        assert len(ids) == 1
        with app.sessions() as s:
            raw = s.get(RawMessage, ids[0])
            assert raw is not None
            raw.claimed_until = clock.now - timedelta(seconds=1)  # the lease ran out
            s.commit()
    report = app.worker.process_available()
    assert report.quarantined == 1
    with app.sessions() as s:
        raw = s.scalars(select(RawMessage)).one()
        assert raw.status is RawStatus.FAILED
        assert raw.error is not None
        assert "interrupted" in raw.error


@pytest.mark.parametrize("path", sorted(DATA.glob("*.eml")), ids=lambda p: p.name)
def test_quirk_files(app: App, path: Path) -> None:
    """Each file in tests/data carries a quirk that once broke something; each must end somewhere sane."""
    report = deliver(app, path.read_bytes())
    assert report.processed == 1
    assert report.quarantined == 0, path.name
    with app.sessions() as s:
        messages = list(s.scalars(select(Message).where(Message.direction == "in")))
    if report.tickets_created or report.replies:
        assert messages


QUIRK_EXPECTATIONS: dict[str, dict[str, str]] = {
    "raw-utf8-headers-rfc6532.eml": {
        "subject": "Drukarka w pokoju 12 nie działa",
        "requester_name": "Łukasz Żółw",
    },
    "8bit-body-without-charset.eml": {
        "text": "Dzień dobry, od wczoraj nie mogę się zalogować",
        "language": "pl",
    },
    "display-name-split-encoded-words.eml": {"subject": "Hasło wygasło", "requester_name": "Zośka Kowalska"},
    "lf-only-line-endings.eml": {"text": "My second monitor flickers"},
    "html-only-body.eml": {"text": "Outlook crashes when I open the calendar", "not_text": "alert(1)"},
    "no-message-id.eml": {"text": "Two keys fell off"},
    "message-id-without-brackets.eml": {"message_id": "no-brackets-1234@example.com"},
    "attachment-name-with-path.eml": {"attachment": "core_dump.bin"},
    "mailparser-crash-inner-boundary-missing.eml": {"text": "The laptop fan is loud"},
    "unknown-charset-label.eml": {"text": "The scanner sends empty pages"},
    "html-nested-255-deep.eml": {"text": "The printer on floor 3 is broken, please help."},
    "slow-attribution-schrieb-440k-line.eml": {"text": "Anna schrieb Anna schrieb"},
    "control-characters-and-nul-in-headers-and-body.eml": {
        "subject": "Printer broken [31m again",
        "requester_name": "Anna Beispiel",
        "text": "The printer on floor 3[31m prints\tnothing.\nSecond line.",
    },
}


@pytest.mark.parametrize("name", sorted(QUIRK_EXPECTATIONS))
def test_quirk_files_are_read_right(app: App, name: str) -> None:
    expected = QUIRK_EXPECTATIONS[name]
    report = deliver(app, (DATA / name).read_bytes())
    assert report.tickets_created == 1
    with app.sessions() as s:
        ticket = s.get(Ticket, report.ticket_ids[0])
        assert ticket is not None
        inbound = next(m for m in ticket.messages if m.direction == "in")
        if "subject" in expected:
            assert ticket.subject == expected["subject"]
        if "requester_name" in expected:
            assert ticket.requester_name == expected["requester_name"]
        if "text" in expected:
            assert expected["text"] in inbound.text
        if "not_text" in expected:
            assert expected["not_text"] not in inbound.text
        if "language" in expected:
            assert ticket.language == expected["language"]
        if "message_id" in expected:
            assert inbound.message_id == expected["message_id"]
        if "attachment" in expected:
            assert [a.filename for a in inbound.attachments] == [expected["attachment"]]


def test_every_quirk_file_has_expectations() -> None:
    names = {p.name for p in DATA.glob("*.eml")} - {"bounce-from-mailer-daemon-without-address.eml"}
    assert names == set(QUIRK_EXPECTATIONS)


def test_mailer_daemon_without_address_is_automatic(app: App) -> None:
    report = deliver(app, (DATA / "bounce-from-mailer-daemon-without-address.eml").read_bytes())
    assert report.automatic == 1
    assert report.tickets_created == 0


def test_claims_of_a_dead_process_are_released_at_start(app: App) -> None:
    from models.claims import release_dead_claims

    app.store.store(make_mail(), source="smtp")
    app.worker.claim(10)
    with app.sessions() as s:
        raw = s.scalars(select(RawMessage)).one()
        host = raw.claimed_by.rpartition(":")[0] if raw.claimed_by else ""
        raw.claimed_by = f"{host}:999999999"  # a pid that cannot exist
        s.commit()
    assert release_dead_claims(app.sessions) == (1, 0)
    assert app.worker.process_available().tickets_created == 1
