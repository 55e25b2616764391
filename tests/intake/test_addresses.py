"""Senders (issue 10): an address recovered from a From header the strict parser rejects, the way a
careful reader recovers it; never one made of decoded encoded words (RFC 2047 section 5); From,
then Reply-To, then Sender, then the envelope (or, for mail fetched over IMAP, Return-Path)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from helpdesk.app import App
from intake.addresses import choose_sender, mailboxes, normal_address
from models.mail import Address
from models.ticket import Ticket
from tests.mail import SUPPORT


@pytest.mark.parametrize(
    ("header", "name", "addr"),
    [
        ('"Kowalski, Jan <jan@example.pl>', "Kowalski, Jan", "jan@example.pl"),  # unbalanced quote
        ('Anna "Ania Nowak <anna@example.com>', "Anna Ania Nowak", "anna@example.com"),
        ("Jan Kowalski jan@example.pl", "Jan Kowalski", "jan@example.pl"),  # no brackets
        ("Jan Kowalski [jan@example.pl]", "Jan Kowalski", "jan@example.pl"),
        ("Kowalski, Jan <jan@example.pl>", "Kowalski, Jan", "jan@example.pl"),  # quotes dropped
        ('"Jan Kowalski"jan@example.pl', "Jan Kowalski", "jan@example.pl"),
        ("<jan@example.pl> (Jan Kowalski)", "Jan Kowalski", "jan@example.pl"),  # a comment names
        ("Jan Kowalski <jan@example.pl> <jan@example.pl>", "Jan Kowalski", "jan@example.pl"),
        ("taro.@docomo.ne.jp", "", "taro.@docomo.ne.jp"),  # a local part ending in a dot
        ("Taro <taro..yamada@docomo.ne.jp>", "Taro", "taro..yamada@docomo.ne.jp"),
        ("<jan@example.pl>.", "", "jan@example.pl"),  # a stray dot after the address
        ("Jan <jan@example.pl.>", "Jan", "jan@example.pl"),  # the domain's root dot
        ("Jan Kowalski <jan@example.pl", "Jan Kowalski", "jan@example.pl"),  # no closing bracket
        ("mailto:jan@example.pl", "", "jan@example.pl"),
        ('"jan@example.pl"', "", "jan@example.pl"),  # an address written as a quoted name
        (
            "alice@example.org)<bob@example.org>",
            "alice@example.org",
            "bob@example.org",
        ),  # the angle-addr is the address
        ("=?utf-8?q?Zo=C5=9Bka?= <zoska@example.pl>", "Zośka", "zoska@example.pl"),
        ('"=?utf-8?q?Zo=C5=9Bka?=" <zoska@example.pl>', "Zośka", "zoska@example.pl"),  # as Outlook writes it
        ('"Books@Books"@example.com', "", '"books@books"@example.com'),
        ("user@[192.0.2.1]", "", "user@[192.0.2.1]"),
        ("jan@example.pl <jan@example.pl>", "", "jan@example.pl"),  # a name that only repeats the address
    ],
)
def test_the_sender_is_recovered_as_a_careful_reader_would(header: str, name: str, addr: str) -> None:
    assert mailboxes(header)[0] == Address(name, addr)


@pytest.mark.parametrize(
    "header",
    [
        "=?utf-8?b?Y2VvQGJhbmsuZXhhbXBsZQ==?=",  # decodes to ceo@bank.example
        "=?utf-8?q?ceo=40bank.example?=",
        '"=?utf-8?q?ceo=40bank.example?="',
        "undisclosed-recipients:;",
        "MAILER-DAEMON",
        "Jan Kowalski jan@home",  # recovered from broken syntax, a dotless "domain" is a word
    ],
)
def test_no_address_is_made_of_what_is_not_one(header: str) -> None:
    assert mailboxes(header) == []


def test_an_encoded_word_decodes_into_the_name_never_into_the_address() -> None:
    (box,) = mailboxes("=?utf-8?q?ceo=40bank.example?= <mallory@attacker.example>")
    assert box == Address("ceo@bank.example", "mallory@attacker.example")


def test_a_legacy_charset_in_an_address_makes_no_address() -> None:
    # RFC 6532 allows UTF-8 addresses only; Big5 bytes in a local part are nobody's mailbox.
    raw = "好消息@example.test".encode("big5").decode("ascii", "surrogateescape")
    assert mailboxes(raw) == []
    utf8 = "用户@example.test".encode().decode("ascii", "surrogateescape")
    assert [b.addr for b in mailboxes(utf8)] == ["用户@example.test"]


def test_recipients_are_read_strictly() -> None:
    # A recovered recipient would be mailed: To and Cc take only what parses.
    assert mailboxes("Jan Kowalski jan@example.pl", recover_broken=False) == []


def headers(*pairs: tuple[str, str]) -> list[tuple[str, str]]:
    return [(name.lower(), value) for name, value in pairs]


def test_from_then_reply_to_then_sender() -> None:
    assert choose_sender(
        headers(("From", "a@x.example"), ("Reply-To", "b@x.example"), ("Sender", "c@x.example"))
    ) == (
        Address("", "a@x.example"),
        "from",
    )
    assert choose_sender(
        headers(("From", "Web form"), ("Sender", "c@x.example"), ("Reply-To", "b@x.example"))
    ) == (
        Address("Web form", "b@x.example"),
        "reply-to",
    )
    assert choose_sender(headers(("From", "Lab Printer <>"), ("Sender", "c@x.example"))) == (
        Address("Lab Printer", "c@x.example"),
        "sender",
    )
    assert choose_sender(headers(("From", "garbage"), ("From", "Ola <ola@x.example>"))) == (
        Address("Ola", "ola@x.example"),
        "from",
    )
    assert choose_sender(headers(("From", "nobody"))) == (None, "")


def test_normal_address_refuses_what_cannot_be_written_to() -> None:
    for value in (
        "",
        "jan",
        "@example.pl",
        "jan@",
        "a b@example.pl",
        "jan@exa mple.pl",
        "x" * 250 + "@example.pl",
    ):
        assert normal_address(value) == ""


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "text", ["<" * 60_000, '"' * 60_000, "(" * 60_000, "a@b " * 15_000, "<a@b>" * 12_000]
)
def test_recovery_is_linear(text: str) -> None:
    started = time.perf_counter()
    mailboxes(text)
    assert time.perf_counter() - started < 2.0


def no_from(extra: str) -> bytes:
    return (
        f"From: Contact form\r\nTo: {SUPPORT}\r\nSubject: Printer\r\n{extra}"
        "Message-ID: <nofrom@example.net>\r\n\r\nThe printer is broken.\r\n"
    ).encode()


def requester(app: App) -> str:
    with app.sessions() as s:
        return s.scalars(select(Ticket.requester)).one()


def test_mail_fetched_over_imap_falls_back_to_its_return_path(app: App) -> None:
    # No envelope of its own: the Return-Path the delivering MTA wrote is its envelope sender.
    app.store.store(no_from("Return-Path: <ola@example.net>\r\n"), source="imap", envelope_from=None)
    assert app.worker.process_available().tickets_created == 1
    assert requester(app) == "ola@example.net"


def test_the_smtp_envelope_wins_over_a_return_path_the_sender_wrote(app: App) -> None:
    app.store.store(
        no_from("Return-Path: <victim@example.org>\r\n"), source="smtp", envelope_from="ola@example.net"
    )
    assert app.worker.process_available().tickets_created == 1
    assert requester(app) == "ola@example.net"
