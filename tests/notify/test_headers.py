"""No control character reaches a header we write, whatever the requester put in theirs.

The acknowledgment repeats the requester's subject and display name. A NUL, ESC or U+2028
copied from them into our headers breaks the mail for its readers (RFC 5322 section 2.2:
printable characters and folding white space only), a CR or LF would start a header of the
attacker's choosing, and an overlong value must be folded, never left as one line over 998
octets (RFC 5322 section 2.1.1) or one encoded word over 75 characters (RFC 2047 section 2).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.parser import BytesParser
from email.policy import compat32
from email.utils import parseaddr
from pathlib import Path

import pytest

from helpdesk.app import App
from notify.compose import Draft, as_bytes, compose
from notify.config import MailIdentity
from tests.conftest import deliver

# In the requester's headers, as RFC 2047 encoded words: that is how a NUL, CR or LF arrives
# in a header value at all (raw, they end the header or the mail).
HOSTILE_WORD = "=?utf-8?q?a=00b=0D=0ABcc:_victim@example.org=0Dc=1B]0;pwned=07=1B[2J=E2=80=A8d=E2=80=AEe?="
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
ENCODED_WORD = re.compile(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
IDENTITY = MailIdentity(address="support@example.test", name="Helpdesk", secret="s", instance="helpdesk-test")


def header_block(data: bytes) -> bytes:
    return re.split(rb"\r?\n\r?\n", data, maxsplit=1)[0]


def assert_clean_headers(data: bytes) -> None:
    block = header_block(data)
    assert all(0x20 <= byte < 0x7F or byte in b"\t\r\n" for byte in block), "a raw control byte"
    lines = block.replace(b"\r\n", b"\n").split(b"\n")
    assert max(len(line) for line in lines) <= 998
    for word in ENCODED_WORD.findall(block):
        assert len(word) <= 75, word
    headers = BytesParser(policy=compat32).parsebytes(block + b"\n\n")
    for name, value in headers.items():
        decoded = str(make_header(decode_header(value)))
        assert UNSAFE.findall(decoded) == [], f"{name}: {decoded!r}"
    assert headers.get_all("Bcc") is None


def sent_files(app: App) -> list[Path]:
    maildir = app.settings.outgoing.maildir
    assert maildir is not None
    return sorted((maildir / "new").iterdir())


@pytest.mark.sqlite_only  # PostgreSQL cannot store the NUL the parser keeps; that is the parser's part
def test_the_acknowledgment_headers_carry_no_control_characters(app: App) -> None:
    mail = (
        # The display name raw (RFC 6532): the parser keeps its control characters as they are.
        f'From: "Eve\x00\x1b]0;pwned\x07\x1b[2J\u2028\u202e\x85Admin" <eve@example.com>\r\n'
        f"To: support@example.test\r\nSubject: Printer {HOSTILE_WORD}\r\n"
        "Message-ID: <hostile-headers@example.com>\r\n\r\nThe printer is broken.\r\n"
    ).encode()
    assert deliver(app, mail).tickets_created == 1
    assert app.sender.deliver_due().sent == 1
    data = sent_files(app)[0].read_bytes()
    assert_clean_headers(data)
    headers = BytesParser(policy=compat32).parsebytes(data)
    subject = str(make_header(decode_header(headers["Subject"])))
    assert subject.startswith("Re: [#1] Printer a")
    assert "Bcc: victim@example.org" in subject  # kept as words of the subject, not as a header
    name, address = parseaddr(str(make_header(decode_header(headers["To"]))))
    assert address == "eve@example.com"
    assert name.startswith("Eve")
    assert name.endswith("Admin")


@pytest.mark.parametrize("char", ["\x00", "\r", "\n", "\r\n", "\x1b", "\x1b[31m", "\u2028", "\u202e", "\x85"])
def test_compose_takes_each_control_character_out_of_subject_and_names(char: str) -> None:
    draft = Draft(
        to=((f"Eve{char}Admin", "eve@example.com"),),
        cc=((f"Carl{char}Copy", "carl@example.com"),),
        subject=f"[#7] Printer{char}Bcc: victim@example.org",
        body="Hello",
        language="en",
        reply_to="support+t7-abc@example.test",
        in_reply_to=f"a{char}b@example.com",
        references=(f"a{char}b@example.com", "root@example.com"),
        ticket=7,
        from_name=f"Alicja{char}Nowak (Helpdesk)",
    )
    data = as_bytes(compose(IDENTITY, draft, message_id="m1@example.test", now=datetime.now(UTC)))
    assert_clean_headers(data)
    headers = BytesParser(policy=compat32).parsebytes(data)
    subject = str(make_header(decode_header(headers["Subject"])))
    assert subject.startswith("[#7] Printer")
    assert subject.endswith("cc: victim@example.org")  # ESC B is a whole escape sequence (ECMA-35)
    assert parseaddr(str(make_header(decode_header(headers["From"]))))[0].startswith("Alicja")
    # A Message-ID with a control character in it is no Message-ID (RFC 5322 section 3.6.4):
    # it is left out of the thread headers rather than changed into another one.
    assert headers["References"] == "<root@example.com>"
    assert headers["In-Reply-To"] is None


def test_overlong_values_are_folded() -> None:
    long_word = "x" * 3000
    draft = Draft(
        to=(("Ż" * 2000, "eve@example.com"), ("N" * 2000, "nina@example.com")),
        subject=f"[#3] {'word ' * 300}{long_word} {'ż' * 1500}",
        body="Hello",
        language="en",
        ticket=3,
    )
    data = as_bytes(compose(IDENTITY, draft, message_id="m2@example.test", now=datetime.now(UTC)))
    assert_clean_headers(data)
    headers = BytesParser(policy=compat32).parsebytes(data)
    assert headers["Subject"].startswith("[#3] word word")  # the tag stays readable without decoding
    subject = str(make_header(decode_header(headers["Subject"])))
    assert subject.startswith("[#3] word word")
    to = str(make_header(decode_header(headers["To"])))
    assert "eve@example.com" in to
    assert "nina@example.com" in to
