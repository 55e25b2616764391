"""Building test mail and talking SMTP in tests: a message factory, sending, an outgoing sink, and
waiting for a `helpdesk serve` child to listen."""

from __future__ import annotations

import smtplib
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from tests.loopback import LOOPBACK, free_port, wait_until

SUPPORT = "support@example.test"


def make_mail(
    *,
    sender: str = "Alice Example <alice@example.com>",
    to: str = SUPPORT,
    subject: str = "Printer on floor 3 does not print",
    body: str = "Hello, the printer on the third floor does not print anything since this morning.",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    headers: dict[str, str] | None = None,
    cc: str | None = None,
    date: datetime | None = None,
    attachments: list[tuple[str, str, bytes]] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or datetime.now(UTC))
    msg["Message-ID"] = message_id or make_msgid(domain="example.com")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    for filename, ctype, data in attachments or []:
        maintype, _, subtype = ctype.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return parse(self.data)


@dataclass
class SinkHandler:
    """Collects what it is sent; `reply` can make it answer 4xx/5xx to test retries."""

    received: list[Received] = field(default_factory=list)
    reply: Callable[[], str] = lambda: "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = self.reply()
        if answer.startswith("250"):
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
            )
        return answer


class SmtpSink:
    """A real aiosmtpd server on loopback that outgoing mail is delivered to."""

    def __init__(self) -> None:
        self.handler = SinkHandler()
        self.port = free_port()
        self.controller = Controller(
            self.handler, hostname=LOOPBACK, port=self.port, server_hostname="sink.test", decode_data=False
        )

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        wait_until(lambda: len(self.received) >= count, timeout)
        return list(self.received)


def send_mail(
    port: int,
    data: bytes,
    *,
    to: Sequence[str] = (SUPPORT,),
    sender: str = "someone@example.com",
    timeout: float = 60.0,
) -> None:
    """Deliver one mail to a listener on loopback as an MTA would; every recipient must be taken."""
    with smtplib.SMTP(LOOPBACK, port, timeout=timeout) as client:
        refused = client.sendmail(sender, list(to), data)
    assert refused == {}, refused


def smtp_answers(port: int, timeout: float = 2.0) -> bool:
    """Whether an SMTP listener greets us and answers NOOP on `port`."""
    try:
        with smtplib.SMTP(LOOPBACK, port, timeout=timeout) as client:
            client.noop()
    except OSError:
        return False
    return True


def wait_for_listener(
    port: int, proc: subprocess.Popen[bytes], log: Path | None = None, timeout: float = 60.0
) -> None:
    """Until the SMTP listener of a `helpdesk serve` child answers; it must not exit meanwhile."""

    def said() -> str:
        return log.read_text(errors="replace") if log is not None and log.exists() else ""

    def ready() -> bool:
        assert proc.poll() is None, f"helpdesk serve exited early:\n{said()}"
        return smtp_answers(port)

    assert wait_until(ready, timeout, 0.1), f"helpdesk serve did not start listening:\n{said()}"
