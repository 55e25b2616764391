"""Outgoing mail that lands in the right thread of the right mail client.

Every mail we write carries (RFC 5322 section 3.6.4, RFC 3834):
* our own Message-ID, in our domain;
* In-Reply-To and References pointing at the mail it answers, so clients thread it;
* "[#N]" in the subject, the last resort of threading when headers get lost;
* Reply-To with the signed token of the ticket, which survives clients that drop headers;
* Auto-Submitted: auto-replied on automatic mail (auto-generated on notices to staff), so
  well-behaved responders stay quiet, and X-Auto-Response-Suppress for Exchange, which ignores
  Auto-Submitted;
* X-Helpdesk-Loop naming this installation, so our own mail is recognised when it comes back.

The subject and the display names repeat what a requester wrote. Before they go into a header
every control character is taken out (notify/controls.py: a NUL, CR or LF has no place in a
header, RFC 5322 section 2.2, and an escape sequence or a bidirectional override none in what a
reader sees), overlong values are cut, and the rest is folded into lines of at most 78
characters with encoded words of at most 75 (RFC 5322 section 2.1.1, RFC 2047 section 2).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.policy import compat32
from email.utils import format_datetime, formataddr, make_msgid

from notify.config import MailIdentity
from notify.controls import one_line

MAX_REFERENCES = 20  # RFC 5322 allows trimming; keep the first (thread root) and the newest
# Characters of a requester's subject or name we repeat: enough for any real one, and a bound
# on what one mail makes us write into every mail of its ticket.
MAX_SUBJECT = 500
MAX_NAME = 200
ENCODED_WORD = 75  # RFC 2047 section 2: an encoded word is at most 75 characters long
_TAG = re.compile(r"\[#\d+\]\s*")
_PREFIX = re.compile(r"^\s*((re|aw|odp|sv|vs|antw|wg|fw|fwd|tr|rv)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)


def base_subject(subject: str) -> str:
    """A subject without reply/forward prefixes and our [#N] tags."""
    previous = None
    text = subject
    while previous != text:
        previous = text
        text = _PREFIX.sub("", _TAG.sub("", text)).strip()
    return text


def tagged_subject(number: int, subject: str, reply: bool = True) -> str:
    base = base_subject(subject)
    tagged = f"[#{number}] {base}".rstrip()
    return f"Re: {tagged}" if reply else tagged


def thread_references(parent_references: Sequence[str], parent_id: str | None) -> list[str]:
    refs = [r for r in parent_references if r]
    if parent_id and parent_id not in refs:
        refs.append(parent_id)
    if len(refs) > MAX_REFERENCES:
        refs = [refs[0], *refs[-(MAX_REFERENCES - 1) :]]
    return refs


@dataclass(frozen=True)
class Draft:
    """A mail to write: who, what, and where in the thread it goes."""

    to: tuple[tuple[str, str], ...]  # (display name, address)
    subject: str
    body: str
    language: str
    reply_to: str | None = None  # usually a tokened plus-address
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    automatic: bool = True
    ticket: int | None = None
    cc: tuple[tuple[str, str], ...] = ()
    from_name: str | None = None  # e.g. "Alicja Nowak via Helpdesk"
    generated: bool = False  # made by the desk, answering nobody: notices and digests to staff
    html: str | None = None  # an HTML alternative to `body` (the weekly report's charts)


def new_message_id(identity: MailIdentity, ticket: int | None) -> str:
    """A fresh Message-ID without angle brackets, in our own domain."""
    idstring = f"t{ticket}" if ticket is not None else None
    return make_msgid(idstring=idstring, domain=identity.domain).strip("<>")


_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP  # readable in any mail client's source view, unlike base64
_UTF8_QP.header_encoding = QP


def header_text(value: str, limit: int) -> str:
    """Mail-derived text fit for a header: one line without control characters, at most `limit` long."""
    text = one_line(value).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _plain(word: str) -> bool:
    """A word that can stand in a header as it is: ASCII, and short enough to fold around."""
    return word.isascii() and len(word) < ENCODED_WORD


def _text_header(value: str) -> str:
    """A header value with only its non-ASCII (or unfoldably long) words RFC 2047-encoded, so
    "[#N]" stays readable raw."""
    if all(_plain(word) for word in value.split(" ")):
        return value
    runs: list[tuple[bool, list[str]]] = []
    for word in value.split(" "):
        if runs and runs[-1][0] == _plain(word):
            runs[-1][1].append(word)
        else:
            runs.append((_plain(word), [word]))
    header = Header(maxlinelen=ENCODED_WORD)
    for ascii_run, words in runs:
        header.append(" ".join(words), "us-ascii" if ascii_run else _UTF8_QP)
    return header.encode()


def _address(name: str, addr: str) -> str:
    name = header_text(name, MAX_NAME)
    addr = "".join(one_line(addr).split())
    if name.isascii():
        return formataddr((name, addr))
    # formataddr would make one encoded word of any length; Header splits it into several.
    return f"{Header(name, 'utf-8', maxlinelen=ENCODED_WORD).encode()} <{addr}>"


def _message_id(value: str) -> bool:
    """A Message-ID we can repeat (RFC 5322 section 3.6.4: printable, no white space, no brackets).

    One with a control character in it is left out of the thread headers, not changed into
    another id that threads nowhere either.
    """
    return bool(value) and value.isprintable() and not any(c.isspace() or c in "<>" for c in value)


def compose(identity: MailIdentity, draft: Draft, *, message_id: str, now: datetime) -> Message:
    """The mail as a MIME message. Built with the compat32 classes: for a plain text part they
    produce the same bytes as the modern API at a seventh of the cost, which matters per mail."""
    if draft.html is None:
        msg = Message()
        msg["MIME-Version"] = "1.0"
        msg.set_payload(draft.body, _UTF8_QP)  # sets Content-Type text/plain; charset and the QP encoding
    else:
        msg = _alternative(draft.body, draft.html)
    msg["From"] = _address(draft.from_name or identity.name, identity.address)
    msg["To"] = ", ".join(_address(name, addr) for name, addr in draft.to)
    if draft.cc:
        msg["Cc"] = ", ".join(_address(name, addr) for name, addr in draft.cc)
    msg["Subject"] = _text_header(header_text(draft.subject, MAX_SUBJECT))
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = f"<{message_id}>"
    if draft.in_reply_to and _message_id(draft.in_reply_to):
        msg["In-Reply-To"] = f"<{draft.in_reply_to}>"
    references = [r for r in draft.references if _message_id(r)]
    if references:
        msg["References"] = " ".join(f"<{r}>" for r in references)
    if draft.reply_to:
        msg["Reply-To"] = _address(identity.name, draft.reply_to)
    if draft.automatic or draft.generated:
        # RFC 3834 section 5: auto-replied answers a mail, auto-generated answers none.
        msg["Auto-Submitted"] = "auto-replied" if draft.automatic else "auto-generated"
        msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Helpdesk-Loop"] = identity.instance
    if draft.ticket is not None:
        msg["X-Helpdesk-Ticket"] = str(draft.ticket)
    msg["Content-Language"] = draft.language
    return msg


def _alternative(text: str, html: str) -> Message:
    """multipart/alternative (RFC 2046 section 5.1.4): the text first, the richer HTML last."""
    msg = MIMEMultipart("alternative")  # sets MIME-Version
    for body, subtype in ((text, "plain"), (html, "html")):
        part = Message()
        part.set_payload(body, _UTF8_QP)
        part.set_type(f"text/{subtype}")
        msg.attach(part)
    return msg


def as_bytes(message: Message) -> bytes:
    """Wire form with CRLF line ends (RFC 5322 section 2.1)."""
    return message.as_bytes(policy=compat32.clone(linesep="\r\n"))
