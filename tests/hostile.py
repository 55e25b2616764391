"""Mail a hostile sender writes to make the desk slow: built here so that tests and benchmarks share it.

Each builder returns the bytes of one mail. The named .eml files in tests/data hold the ones that
broke something, exactly as they were; these make variants of any size.
"""

from __future__ import annotations

from email.message import EmailMessage

from tests.mail import SUPPORT

# One "... schrieb ..." line the attribution expression once took quadratically (57 s at 440,000
# characters), followed by a quoted line so that the line is read as a possible attribution.
SCHRIEB_UNIT = "Anna schrieb "


def schrieb_line(length: int) -> str:
    return (SCHRIEB_UNIT * (length // len(SCHRIEB_UNIT) + 1))[:length]


def slow_attribution_mail(
    length: int = 440_000,
    *,
    message_id: str = "<slow-attribution@example.com>",
    sender: str = "mallory@example.com",
) -> bytes:
    """A base64 text body of one `length`-character "schrieb" line and a quote (600 KB at the default)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = SUPPORT
    msg["Subject"] = "Frage"
    msg["Message-ID"] = message_id
    msg.set_content(schrieb_line(length) + "\n> zitiert\n", cte="base64")
    return msg.as_bytes()


def big_text_mail(chars: int, *, message_id: str, sender: str = "mallory@example.com") -> bytes:
    """A plain mail with `chars` characters of ordinary words: slow only by its size."""
    words = "the printer on floor three does not print anything since this morning "
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = SUPPORT
    msg["Subject"] = "Long report"
    msg["Message-ID"] = message_id
    body = "\n".join((words * 2)[:140] for _ in range(chars // 141 + 1))[:chars]
    msg.set_content(body, cte="quoted-printable")
    return msg.as_bytes()
