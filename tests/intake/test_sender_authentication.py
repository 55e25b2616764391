"""Who the sender is proven to be, and what the desk does with it: Reply-To, spam, budgets.

The verdict comes from Authentication-Results of trusted MTAs only (RFC 8601), or from a DKIM
check of our own with a key the test generates and serves through an injected DNS lookup.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from helpdesk.app import App
from helpdesk.views import render_ticket, ticket_detail
from intake.authentication import SenderAuthConfig, SenderAuthenticator, aligned, staff_refusal
from models.outbox import OutboxMessage
from models.raw_message import RawMessage
from models.sender_auth import AuthResult, SenderAuth
from models.ticket import Ticket
from tests.conftest import Clock, deliver
from tests.mail import make_mail
from tickets.queries import record_of

MX = "mx.example.test"


def mail_with_headers(
    top: list[tuple[str, str]], sender: str = "Anna <anna@example.com>", **kwargs: Any
) -> bytes:
    """A mail with `top` header fields above everything else, as MTAs prepend them."""
    body = make_mail(sender=sender, **kwargs)
    return b"".join(f"{name}: {value}\r\n".encode() for name, value in top) + body


def verdict(raw: bytes, sender: str = "anna@example.com", trusted: tuple[str, ...] = (MX,)) -> SenderAuth:
    return SenderAuthenticator(SenderAuthConfig(trusted_authserv_ids=trusted)).check(raw, sender)


# -- Authentication-Results -------------------------------------------------------------------


def test_trusted_dmarc_pass_authenticates_the_from_domain() -> None:
    raw = mail_with_headers(
        [
            (
                "Authentication-Results",
                f"{MX}; dkim=pass header.d=example.com; spf=pass smtp.mailfrom=example.com; "
                "dmarc=pass (p=reject) header.from=example.com",
            ),
            ("Received", f"from mail.example.com by {MX}; Tue, 24 Nov 2026 10:00:00 +0000"),
        ]
    )
    result = verdict(raw)
    assert result.result is AuthResult.PASS
    assert (result.domain, result.method, result.by) == ("example.com", "dmarc", MX)
    assert result.authenticates("anna@example.com")
    assert not result.authenticates("anna@other.example")


def test_untrusted_authserv_id_counts_for_nothing() -> None:
    raw = mail_with_headers(
        [("Authentication-Results", "mx.attacker.example; dkim=pass header.d=example.com")]
    )
    assert verdict(raw).result is AuthResult.NONE


def test_empty_trusted_list_trusts_nobody() -> None:
    raw = mail_with_headers([("Authentication-Results", f"{MX}; dmarc=pass header.from=example.com")])
    result = verdict(raw, trusted=())
    assert result.result is AuthResult.NONE
    assert "not checked" in result.reason


def test_forged_trusted_header_below_the_trusted_mtas_received_line_is_ignored() -> None:
    # The attacker wrote a "pass" under our MX's name into the mail; our MX's own header is on top.
    raw = mail_with_headers(
        [
            ("Authentication-Results", f"{MX}; dkim=none; spf=softfail smtp.mailfrom=example.com"),
            ("Received", f"from evil.example by {MX}; Tue, 24 Nov 2026 10:00:00 +0000"),
            (
                "Authentication-Results",
                f"{MX}; dkim=pass header.d=example.com; dmarc=pass header.from=example.com",
            ),
        ]
    )
    assert verdict(raw).result is AuthResult.NONE


def test_forged_header_right_under_the_real_one_cannot_add_a_pass_it_did_not_give() -> None:
    # No Received line between them (the attacker talked to our MX directly): the topmost header
    # reporting a method decides that method.
    raw = mail_with_headers(
        [
            ("Authentication-Results", f"{MX}; dkim=none; dmarc=none header.from=example.com"),
            (
                "Authentication-Results",
                f"{MX}; dkim=pass header.d=example.com; dmarc=pass header.from=example.com",
            ),
        ]
    )
    assert verdict(raw).result is AuthResult.NONE


def test_several_headers_of_one_trusted_mta_count_together() -> None:
    # A milter per method, each adding its own header (OpenDKIM, then OpenDMARC).
    raw = mail_with_headers(
        [
            ("Authentication-Results", f"{MX}; dmarc=pass header.from=example.com"),
            ("Authentication-Results", f"{MX}; dkim=pass header.d=example.com"),
            ("Received", f"from mail.example.com by {MX}; Tue, 24 Nov 2026 10:00:00 +0000"),
        ]
    )
    assert verdict(raw).passed


def test_dmarc_fail_is_a_failed_verdict_and_unaligned_passes_prove_nothing() -> None:
    failed = mail_with_headers(
        [
            (
                "Authentication-Results",
                f"{MX}; dkim=pass header.d=bulkmailer.example; dmarc=fail header.from=example.com",
            )
        ]
    )
    result = verdict(failed)
    assert result.result is AuthResult.FAIL
    assert result.method == "dmarc"
    unaligned = mail_with_headers(
        [
            (
                "Authentication-Results",
                f"{MX}; dkim=pass header.d=bulkmailer.example; spf=pass smtp.mailfrom=bulkmailer.example",
            )
        ]
    )
    assert verdict(unaligned).result is AuthResult.NONE


def test_alignment_accepts_a_parent_domain_never_a_bare_suffix() -> None:
    assert aligned("mail.example.com", "example.com")
    assert aligned("example.com", "EXAMPLE.com.")
    assert not aligned("example.com", "mail.example.com")
    assert not aligned("example.com", "com")
    assert not aligned("badexample.com", "example.com")


def test_a_folded_header_is_read_whole() -> None:
    raw = (
        f"Authentication-Results: {MX};\r\n\tdkim=pass header.d=example.com\r\n"
        "\theader.s=sel;\r\n dmarc=pass (p=none)\r\n  header.from=example.com\r\n"
    ).encode() + make_mail(sender="anna@example.com")
    result = verdict(raw)
    assert (result.result, result.method) == (AuthResult.PASS, "dmarc")


def test_garbage_and_huge_headers_do_not_break_the_check() -> None:
    raw = mail_with_headers(
        [
            ("Authentication-Results", f"{MX}; ;;; ==="),
            ("Authentication-Results", f"{MX}; dkim=pass " + "x.y=z " * 5000),
        ]
    )
    assert verdict(raw).result is AuthResult.NONE


# -- our own DKIM check with a key made here ---------------------------------------------------


@pytest.fixture(scope="module")
def dkim_key() -> tuple[bytes, str]:
    """An RSA key pair: the private key in PEM, the public key as a DKIM TXT record."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"


def signed(private_key: bytes, sender: str = "Anna <anna@example.com>", domain: str = "example.com") -> bytes:
    mail = make_mail(sender=sender).replace(b"\n", b"\r\n")  # as on the wire (RFC 5322 section 2.1)
    signature = dkim.sign(
        mail, b"sel", domain.encode(), private_key, include_headers=[b"from", b"subject", b"to"]
    )
    return bytes(signature) + mail


def dns_for(records: dict[str, str]) -> Callable[..., bytes | None]:
    asked: list[str] = []

    def lookup(name: bytes, timeout: float = 5.0) -> bytes | None:
        asked.append(name.decode())
        record = records.get(name.decode().rstrip("."))
        return record.encode() if record is not None else None

    lookup.asked = asked  # type: ignore[attr-defined]
    return lookup


def test_own_dkim_check_passes_a_valid_aligned_signature(dkim_key: tuple[bytes, str]) -> None:
    private, record = dkim_key
    dns = dns_for({"sel._domainkey.example.com": record})
    checker = SenderAuthenticator(SenderAuthConfig(verify_dkim=True), dns=dns)
    result = checker.check(signed(private), "anna@example.com")
    assert result.result is AuthResult.PASS
    assert (result.domain, result.method, result.by) == ("example.com", "dkim", "helpdesk")
    assert dns.asked == ["sel._domainkey.example.com."]  # type: ignore[attr-defined]


def test_own_dkim_check_refuses_a_tampered_mail_an_unknown_key_and_an_unaligned_signer(
    dkim_key: tuple[bytes, str],
) -> None:
    private, record = dkim_key
    checker = SenderAuthenticator(
        SenderAuthConfig(verify_dkim=True),
        dns=dns_for({"sel._domainkey.example.com": record, "sel._domainkey.other.example": record}),
    )
    tampered = signed(private).replace(b"does not print", b"prints money")
    assert checker.check(tampered, "anna@example.com").result is AuthResult.NONE
    no_key = SenderAuthenticator(SenderAuthConfig(verify_dkim=True), dns=dns_for({}))
    assert no_key.check(signed(private), "anna@example.com").result is AuthResult.NONE
    # A valid signature of another domain does not vouch for the From.
    other = signed(private, domain="other.example")
    result = checker.check(other, "anna@example.com")
    assert result.result is AuthResult.NONE
    assert "header.d=other.example" in result.reason


def test_dkim_verdict_is_stored_and_shown_by_tickets_show(
    make_app: Callable[..., App], dkim_key: tuple[bytes, str]
) -> None:
    private, record = dkim_key
    app = make_app(security={"verify_dkim": True})
    assert app.pipeline.services.authenticator is not None
    # The DNS of this machine is replaced by the test's key (there is no DNS here).
    app.pipeline.services.authenticator = SenderAuthenticator(
        app.settings.sender_auth, dns=dns_for({"sel._domainkey.example.com": record})
    )
    report = deliver(app, signed(private))
    with app.sessions() as s:
        raw = s.scalars(select(RawMessage)).one()
        assert raw.sender_auth is not None
        assert raw.sender_auth["result"] == "pass"
        ticket = s.get(Ticket, report.ticket_ids[0])
        assert ticket is not None
        view = ticket_detail(record_of(s, ticket))
    assert view["messages"][0]["authentication"]["domain"] == "example.com"
    assert "sender authentication: pass example.com (dkim by helpdesk)" in render_ticket(view)


# -- what the desk does with it ------------------------------------------------------------------


def sent_to(app: App) -> list[tuple[str, str]]:
    with app.sessions() as s:
        return [
            (row.kind, row.recipient) for row in s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        ]


def events(app: App, ticket_id: int, kind: str) -> list[str]:
    with app.sessions() as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None
        return [e.reason for e in ticket.events if e.kind == kind]


def test_cross_domain_reply_to_of_an_unauthenticated_sender_is_not_answered(app: App) -> None:
    report = deliver(
        app, make_mail(sender="anna@example.com", headers={"Reply-To": "Victim <victim@elsewhere.example>"})
    )
    assert sent_to(app) == [("ack", "anna@example.com")]
    (why,) = events(app, report.ticket_ids[0], "reply_to_ignored")
    assert "victim@elsewhere.example" in why


def test_same_domain_reply_to_is_answered(app: App) -> None:
    deliver(app, make_mail(sender="anna@example.com", headers={"Reply-To": "helpdesk-team@example.com"}))
    assert sent_to(app) == [("ack", "helpdesk-team@example.com")]


def test_an_authenticated_sender_may_name_any_reply_to(make_app: Callable[..., App]) -> None:
    app = make_app(security={"trusted_authserv_ids": [MX]})
    raw = mail_with_headers(
        [("Authentication-Results", f"{MX}; dmarc=pass header.from=example.com")],
        sender="anna@example.com",
        headers={"Reply-To": "anna.private@elsewhere.example"},
    )
    deliver(app, raw)
    assert sent_to(app) == [("ack", "anna.private@elsewhere.example")]


def test_a_forged_from_that_fails_dmarc_gets_no_acknowledgment(make_app: Callable[..., App]) -> None:
    app = make_app(security={"trusted_authserv_ids": [MX]})
    raw = mail_with_headers(
        [
            (
                "Authentication-Results",
                f"{MX}; spf=fail smtp.mailfrom=bank.example; dmarc=fail header.from=bank.example",
            )
        ],
        sender="ceo@bank.example",
    )
    report = deliver(app, raw)
    assert report.tickets_created == 1
    assert sent_to(app) == []
    (why,) = events(app, report.ticket_ids[0], "ack_skipped")
    assert "sender authentication failed" in why


@pytest.mark.parametrize(
    "header",
    [
        ("X-Spam-Flag", "YES"),
        ("X-Spam-Status", "Yes, score=12.3 required=5.0 tests=BAYES_99,URIBL_BLACK"),
        ("X-Spam", "Yes"),
    ],
)
def test_mail_an_upstream_filter_marked_as_spam_opens_a_ticket_and_gets_no_mail(
    app: App, clock: Clock, header: tuple[str, str]
) -> None:
    report = deliver(app, make_mail(sender="stranger@example.net", headers=dict([header])))
    assert report.tickets_created == 1
    assert sent_to(app) == []
    with app.sessions() as s:
        ticket = s.get(Ticket, report.ticket_ids[0])
        assert ticket is not None
        assert "spam" in ticket.tags
        assert ticket.assignee is None
    (why,) = events(app, report.ticket_ids[0], "ack_skipped")
    assert "spam" in why


def test_a_ham_verdict_is_not_spam(app: App) -> None:
    deliver(app, make_mail(headers={"X-Spam-Flag": "NO", "X-Spam-Status": "No, score=-1.0 required=5.0"}))
    assert [kind for kind, _ in sent_to(app)] == ["ack"]


def test_automatic_mail_never_goes_to_list_or_daemon_addresses(app: App) -> None:
    deliver(
        app,
        make_mail(sender="newsletter-request@lists.example", subject="Printer question"),
        make_mail(sender="noreply@service.example", subject="Printer question"),
        make_mail(sender="owner-staff@lists.example", subject="Printer question"),
    )
    assert sent_to(app) == []
    with app.sessions() as s:
        opened = s.scalars(select(func.count()).select_from(Ticket)).one()
    assert opened == 3  # each is a ticket, none is answered


def test_an_authenticated_sender_is_not_limited_by_the_forgery_budget(
    make_app: Callable[..., App], clock: Clock
) -> None:
    app = make_app(
        security={"trusted_authserv_ids": [MX]},
        limits={"automatic_per_hour": 5, "authenticated_per_address_per_hour": 8},
    )
    # A flood of forgeries uses up the whole budget for unauthenticated senders.
    deliver(app, *(make_mail(sender=f"forged-{i}@domain-{i}.example", subject=f"x {i}") for i in range(20)))
    assert len(sent_to(app)) == 5
    # A colleague whose domain signs its mail still gets every acknowledgment, up to the larger
    # per-address allowance, and none of it comes out of the exhausted budget.
    for i in range(10):
        deliver(
            app,
            mail_with_headers(
                [("Authentication-Results", f"{MX}; dkim=pass header.d=example.com")],
                sender="anna@example.com",
                subject=f"Question {i}",
            ),
        )
        clock.advance(seconds=30)
    acks_to_anna = [r for _, r in sent_to(app) if r == "anna@example.com"]
    assert len(acks_to_anna) == 8
    with app.sessions() as s:
        report = app.mailer.budgets.report(s, clock.now)
    assert report.automatic_sent == 5
    assert report.authenticated_sent == 8
    assert report.suppressed_global == 15
    assert report.suppressed_address == 2


def test_staff_refusal_asks_for_the_froms_own_domain() -> None:
    required = SenderAuthConfig(require_authenticated_staff=True)
    proven = SenderAuth(AuthResult.PASS, "example.test", "dkim", MX)
    assert staff_refusal(required, proven, "alicja@example.test") == ""
    assert "not authenticated for example.test" in staff_refusal(
        required, SenderAuth(), "alicja@example.test"
    )
    # Proof for another domain is no proof for this From.
    assert staff_refusal(required, proven, "alicja@other.example")
    assert staff_refusal(SenderAuthConfig(), SenderAuth(), "alicja@example.test") == ""
