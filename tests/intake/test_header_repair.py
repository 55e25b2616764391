"""Headers (issue 10): a broken fold or a first line that is no header does not push the headers
into the body; what is repaired is never worse than the standard library's lenient reading."""

from __future__ import annotations

import email
import time
from email.policy import compat32

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake.config import IntakeConfig
from intake.header_repair import MAX_HEADER_BLOCK, repair_headers
from intake.parse import parse_email, read_message


def test_a_fold_without_indentation_is_joined_to_its_header() -> None:
    data = b"Subject: the printer on the 3rd floor\r\nshows error 5\r\nFrom: Ola <ola@example.pl>\r\n\r\nbody\r\n"
    message, notes = read_message(data)
    assert message["Subject"] == "the printer on the 3rd floor\r\n shows error 5"
    assert message["From"] == "Ola <ola@example.pl>"
    assert message.get_payload() == "body\r\n"
    assert notes == ["1 header line(s) without indentation joined to the header above"]


def test_a_body_without_its_blank_line_stays_the_body() -> None:
    # No known header follows the line: the block ends there, as the standard library says.
    data = b"From: ola@example.pl\r\nSubject: s\r\nHello team,\r\nPrinter: broken\r\n"
    assert repair_headers(data) is None
    message, notes = read_message(data)
    assert message.get_payload() == "Hello team,\r\nPrinter: broken\r\n"
    assert notes == []


@pytest.mark.parametrize(
    ("first", "note"),
    [
        (b"Microsoft Mail Internet Headers Version 2.0\r\n", "1 line(s) before the headers dropped"),
        (b"\r\n", "blank line before the headers removed"),
        (b"\xef\xbb\xbf", "byte-order mark before the headers removed"),
    ],
)
def test_what_comes_before_the_headers_is_set_aside(first: bytes, note: str) -> None:
    data = (
        first
        + b"From: Ola <ola@example.pl>\r\nSubject: Printer\r\nTo: support@example.test\r\n\r\nBroken.\r\n"
    )
    mail = parse_email(data, IntakeConfig())
    assert (mail.sender, mail.subject, mail.text) == ("ola@example.pl", "Printer", "Broken.\n")
    assert note in mail.defects


def test_a_space_before_the_colon_of_a_known_header() -> None:
    mail = parse_email(
        b"From : Fax <fax@example.com>\r\nSubject : Paper jam\r\n\r\nTray 2\r\n", IntakeConfig()
    )
    assert (mail.sender, mail.subject, mail.text) == ("fax@example.com", "Paper jam", "Tray 2\n")


def test_a_well_formed_mail_is_read_as_it_is() -> None:
    data = b"From: ola@example.pl\r\nSubject: s\r\n\r\nbody\r\n"
    message, notes = read_message(data)
    assert notes == []
    assert message.items() == email.message_from_bytes(data, policy=compat32).items()


header_line = st.one_of(
    st.sampled_from(
        [
            b"From: Ola <ola@example.pl>",
            b"Subject: printer",
            b"To: support@example.test",
            b"X-Mailer: test",
            b"Content-Type: text/plain",
            b"Received: from a by b",
            b"Subject : spaced",
            b" folded continuation",
            b"no header here",
            b"Name: value",
            b"",
            b"\xef\xbb\xbfFrom: bom",
            b"From nobody Mon Jan  1 00:00:00 2024",
        ]
    ),
    st.binary(max_size=40),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(header_line, max_size=12), ending=st.sampled_from([b"\r\n", b"\n"]))
def test_never_worse_than_the_lenient_reading(lines: list[bytes], ending: bytes) -> None:
    data = ending.join(lines) + ending + ending + b"body" + ending
    lenient = email.message_from_bytes(data, policy=compat32)
    repaired, _ = read_message(data)
    assert len(repaired) >= len(lenient)
    if repaired is not lenient and len(lenient):
        # Every header the lenient reading found is still there, at most continued by a joined fold.
        found = [(k.lower(), str(v)) for k, v in repaired.raw_items()]
        for key, value in lenient.raw_items():
            assert any(k == key.lower() and v.startswith(str(value).rstrip("\r\n")) for k, v in found), key


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "block",
    [
        b"Subject: x\r\n" + b"no header line\r\n" * (MAX_HEADER_BLOCK // 16) + b"From: a@b.example\r\n",
        b"Subject: x\r\n" + b"x" * (2 * MAX_HEADER_BLOCK) + b"\r\nFrom: a@b.example\r\n",
        b"junk\r\n" * 5 + b"Subject : x\r\n" * (MAX_HEADER_BLOCK // 13),
    ],
)
def test_repair_is_linear(block: bytes) -> None:
    started = time.perf_counter()
    parse_email(block + b"\r\nbody\r\n", IntakeConfig())
    assert time.perf_counter() - started < 3.0
