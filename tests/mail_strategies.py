"""Hypothesis strategies for hostile mail, and the check every mail must pass: parsed (or refused with
ParseError) with its invariants, classified, threaded. Shared by the property test that runs in
`make test` and by the longer fuzz run, `python -m bench.fuzz_pipeline`.

Mails are raw bytes built by hand, not with the email package, so that they can be as broken as
real ones: headers with encoded words that never end, control characters and 8-bit bytes,
multiparts nested or without their boundary, HTML nested deeper than parsers go, lines of
hundreds of kilobytes made of the pieces that once made an expression slow, and the quirk files
of tests/data with bytes flipped, cut, repeated or inserted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st
from sqlalchemy import insert
from sqlalchemy.orm import Session

from intake.automatic import Automation, MailKind, detect_automatic
from intake.config import IntakeConfig
from intake.errors import ParseError
from intake.parse import parse_email
from intake.threads import bounce_ticket, find_ticket
from models import tables
from models.base import utcnow
from models.mail import ParsedEmail
from notify.config import MailIdentity

DATA = Path(__file__).resolve().parent / "data"
CORPUS = tuple(path.read_bytes() for path in sorted(DATA.rglob("*.eml")) if path.stat().st_size < 100_000)
SUPPORT = "support@example.test"
IDENTITY = MailIdentity(address=SUPPORT, secret="fuzz-secret", instance="helpdesk-fuzz")
KNOWN_IDS = ("known-1@example.com", "known-2@example.com")  # messages stored on ticket 1

# Pieces that made (or might make) a stage slow or confused: attribution and separator words,
# quote marks, address and id look-alikes, encoded-word markers, control characters, markup.
PIECES = (
    "Anna schrieb ",
    "schrieb",
    ":",
    " wrote:",
    "On Mon, 1 Jan 2024, Bob <bob@example.com> wrote:",
    "W dniu 1.01.2024 Anna napisał(a):",
    "> ",
    ">",
    "-----Original Message-----",
    "________________________________",
    "-- ",
    "From: x\n",
    "Sent: y\n",
    "To: z\n",
    "Subject: w\n",
    "Sent from my phone",
    "[cid:",
    "]",
    "a-",
    "abcdef-",
    "deadbeef12",
    "a@",
    "b.",
    "user@example.com",
    "http://",
    "www.",
    "12345",
    "=?utf-8?q?",
    "=?utf-8?b?",
    "?=",
    "=00",
    "=1B",
    "<",
    ">",
    "<div>",
    "</div>",
    "<p>",
    "<b>",
    "&amp;",
    "&#0;",
    "#status resolved",
    "[#1]",
    "\x00",
    "\x1b[31m",
    "\x07",
    "\r",
    "\n",
    "\t",
    " ",
    "\u202e",
    "\u00a0",
    "ł",
    "ż",
    "ß",
    "é",
    "١",
    "ı",
    "😀",
    "urgent",
    "awaria",
    "delivery status",
    "mailer-daemon",
    "out of office",
    "Automatische Antwort",
)

soup = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=12)), max_size=40).map("".join)
# One piece repeated into a line of up to ~200 KB: the shape of the slow-attribution mail.
long_run = st.tuples(st.sampled_from(PIECES), st.integers(1, 20_000)).map(lambda pair: pair[0] * pair[1])
text = st.one_of(soup, soup, long_run, st.tuples(soup, long_run, soup).map("".join))


def _bytes(value: str, how: str) -> bytes:
    if how == "utf-8":
        return value.encode("utf-8", "surrogatepass")
    return value.encode("latin-1", "replace")


encoded_text = st.tuples(text, st.sampled_from(("utf-8", "latin-1"))).map(lambda pair: _bytes(*pair))

message_id = st.one_of(
    st.sampled_from(KNOWN_IDS),
    st.from_regex(r"[a-z0-9.]{1,20}@example\.(com|test)", fullmatch=True),
    soup,
).map(lambda mid: f"<{mid}>")
address = st.one_of(
    st.from_regex(r"[a-z]{1,10}@(example\.com|example\.test)", fullmatch=True),
    st.just(SUPPORT),
    st.just("mailer-daemon@example.com"),
    st.just(f"support+t1-{'0' * 16}@example.test"),
    soup,
)
address_list = st.lists(
    st.tuples(soup, address).map(lambda pair: f'"{pair[0]}" <{pair[1]}>' if pair[0] else pair[1]),
    max_size=8,
).map(", ".join)

HEADER_NAMES = (
    "Auto-Submitted",
    "Precedence",
    "List-Id",
    "X-Autoreply",
    "X-Auto-Response-Suppress",
    "X-Failed-Recipients",
    "X-Helpdesk-Loop",
    "X-Priority",
    "Importance",
    "Content-Language",
    "Received",
    "Return-Path",
    "X-Mailer",
)
extra_header = st.tuples(st.sampled_from(HEADER_NAMES), soup).map(lambda pair: f"{pair[0]}: {pair[1]}")


@st.composite
def headers(draw: st.DrawFn) -> bytes:
    lines = [
        f"From: {draw(address_list)}",
        f"To: {draw(address_list)}",
        f"Subject: {draw(text)}",
        f"Message-ID: {draw(message_id)}",
    ]
    if draw(st.booleans()):
        lines.append(f"Cc: {draw(address_list)}")
    if draw(st.booleans()):
        lines.append(f"In-Reply-To: {draw(message_id)}")
    if draw(st.booleans()):
        lines.append("References: " + " ".join(draw(st.lists(message_id, max_size=30))))
    if draw(st.booleans()):
        lines.append(f"Reply-To: {draw(address_list)}")
    if draw(st.booleans()):
        lines.append(f"Date: {draw(soup)}")
    lines.extend(draw(st.lists(extra_header, max_size=6)))
    return b"".join(_bytes(line, draw(st.sampled_from(("utf-8", "latin-1")))) + b"\r\n" for line in lines)


@st.composite
def html(draw: st.DrawFn) -> str:
    depth = draw(st.integers(0, 600))  # libxml2 gives up at 255
    tag = draw(st.sampled_from(("div", "p", "span", "table", "li", "b")))
    return f"<{tag}>" * depth + draw(text) + f"</{tag}>" * depth


TRANSFER = ("7bit", "8bit", "base64", "quoted-printable", "x-unknown", "")
CONTENT_TYPES = (
    "text/plain",
    "text/html",
    "application/octet-stream",
    "message/rfc822",
    "message/delivery-status",
    "text/rfc822-headers",
    "image/png",
)


@st.composite
def part(draw: st.DrawFn, depth: int = 0) -> bytes:
    if depth < 3 and draw(st.integers(0, 3)) == 0:
        boundary = draw(st.sampled_from(("b1", "b2", "=_x", "")))
        children = draw(st.lists(part(depth + 1), max_size=5))
        subtype = draw(st.sampled_from(("mixed", "alternative", "report; report-type=delivery-status")))
        body = b"".join(b"--" + boundary.encode() + b"\r\n" + child + b"\r\n" for child in children)
        if draw(st.booleans()):
            body += b"--" + boundary.encode() + b"--\r\n"
        return f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode() + body
    ctype = draw(st.sampled_from(CONTENT_TYPES))
    charset = draw(st.sampled_from(("utf-8", "iso-8859-2", "us-ascii", "unknown-8bit", "bogus")))
    encoding = draw(st.sampled_from(TRANSFER))
    disposition = ""
    if draw(st.booleans()):
        disposition = f'Content-Disposition: attachment; filename="{draw(soup)}"\r\n'
    content = _bytes(draw(html()) if ctype == "text/html" else draw(text), "utf-8")
    if encoding == "base64" and draw(st.booleans()):
        import base64

        content = base64.encodebytes(content)
    header = (
        f"Content-Type: {ctype}; charset={charset}\r\nContent-Transfer-Encoding: {encoding}\r\n{disposition}"
    )
    return _bytes(header, "utf-8") + b"\r\n" + content


@st.composite
def built_mail(draw: st.DrawFn) -> bytes:
    return draw(headers()) + b"MIME-Version: 1.0\r\n" + draw(part())


@st.composite
def mutated_mail(draw: st.DrawFn) -> bytes:
    """A quirk file with a few bytes flipped, cut out, repeated or inserted."""
    data = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        operation = draw(st.sampled_from(("flip", "cut", "repeat", "insert")))
        if operation == "flip":
            data[at] = draw(st.integers(0, 255))
        elif operation == "cut":
            del data[at : at + draw(st.integers(1, 200))]
        elif operation == "repeat":
            chunk = data[at : at + draw(st.integers(1, 80))]
            data[at:at] = chunk * draw(st.integers(1, 500))
        else:
            data[at:at] = _bytes(draw(text), "utf-8")
    return bytes(data)


mail_bytes = st.one_of(built_mail(), mutated_mail())

CONFIG = IntakeConfig()
_BODY_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def add_known_ticket(session: Session) -> None:
    """Ticket 1 with two stored messages, so that generated references can thread to it."""
    now = utcnow()
    session.execute(
        insert(tables.tickets).values(
            id=1, subject="printer", requester="alice@example.com", created_at=now, updated_at=now
        )
    )
    for mid in KNOWN_IDS:
        session.execute(
            insert(tables.messages).values(
                ticket_id=1, direction="in", kind="requester", message_id=mid, from_addr="alice@example.com"
            )
        )
    session.execute(
        insert(tables.participants).values(ticket_id=1, address="alice@example.com", role="requester")
    )
    session.commit()


def check_invariants(mail: ParsedEmail) -> None:
    """What leaves the parser is safe to store and bounded by the per-mail caps."""
    one_line = [
        mail.subject,
        mail.message_id or "",
        mail.content_type,
        *mail.in_reply_to,
        *mail.references,
        *(a.addr for a in (*mail.to, *mail.cc, *mail.reply_to)),
        *(a.name for a in (*mail.to, *mail.cc, *mail.reply_to)),
        *(a.filename for a in mail.attachments),
        *(value for values in mail.headers.values() for value in values),
    ]
    if mail.from_ is not None:
        one_line += [mail.from_.addr, mail.from_.name]
    for value in one_line:
        assert not _LINE_CONTROLS.search(value), repr(value[:200])
        value.encode("utf-8")  # no lone surrogates
    for body in (mail.text, mail.new_text):
        assert not _BODY_CONTROLS.search(body), repr(_BODY_CONTROLS.search(body))
        body.encode("utf-8")
    assert len(mail.in_reply_to) + len(mail.references) <= CONFIG.max_references
    assert len(mail.to) + len(mail.cc) <= CONFIG.max_participants
    assert len(mail.attachments) <= CONFIG.max_attachment_rows
    assert len(mail.subject) <= 1000


@dataclass
class Outcome:
    parsed: bool = False
    kind: MailKind | None = None
    ticket: int | None = None


@dataclass
class Counts:
    cases: int = 0
    refused: int = 0  # ParseError: nothing usable
    kinds: dict[str, int] = field(default_factory=dict)
    threaded: int = 0


def through_the_pipeline(data: bytes, session: Session, counts: Counts | None = None) -> Outcome:
    """Parse, classify and thread one mail as the pipeline's first stages do; raises on any bug."""
    outcome = Outcome()
    if counts is not None:
        counts.cases += 1
    try:
        mail = parse_email(data, CONFIG)
    except ParseError:
        if counts is not None:
            counts.refused += 1
        return outcome
    outcome.parsed = True
    check_invariants(mail)
    automation: Automation = detect_automatic(mail, IDENTITY, "sender@example.com")
    outcome.kind = automation.kind
    if automation.kind is MailKind.BOUNCE:
        outcome.ticket = bounce_ticket(session, IDENTITY, mail, [SUPPORT]).ticket_id
    else:
        match = find_ticket(session, IDENTITY, mail, [SUPPORT])
        outcome.ticket = match.ticket_id if match else None
    session.rollback()
    if counts is not None:
        counts.kinds[automation.kind.value] = counts.kinds.get(automation.kind.value, 0) + 1
        counts.threaded += outcome.ticket is not None
    return outcome
