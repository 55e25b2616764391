"""Sign-in by mail and sessions, against the real server on loopback: every page needs a session,
a link works once and for 15 minutes, for the address it was made for alone; sessions expire and
end when signed out; asking for a link says the same for every address and mails only staff."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import quote, urlsplit

import pytest
from sqlalchemy import select

from bench.desk_seed import COORDINATOR
from helpdesk.web.auth import PER_ADDRESS
from models.outbox import OutboxKind, OutboxMessage
from tests.conftest import deliver
from tests.loopback import wait_until
from tests.mail import make_mail, parse
from tests.web.conftest import Served

PAGES = ("/queue", "/tickets/1", "/team", "/sla", "/coverage", "/reports")
TECH = "alicja@example.test"


@pytest.fixture
def desk(serve: object) -> Served:
    served: Served = serve()  # type: ignore[operator]
    deliver(served.app, make_mail(subject="Printer on floor 3 does not print"))
    return served


@pytest.mark.parametrize("path", PAGES)
def test_every_page_but_sign_in_refuses_without_a_session(desk: Served, path: str) -> None:
    answer = desk.browser().get(path)
    assert answer.status == 303
    assert answer.location.startswith("/sign-in?next=")
    assert "Printer" not in answer.body
    assert desk.browser().get("/sign-in").status == 200


def test_a_forged_cookie_opens_nothing(desk: Served) -> None:
    browser = desk.browser()
    browser.cookie = "helpdesk_session=eyJlIjoiY29vcmRpbmF0b3JAZXhhbXBsZS50ZXN0In0.forged"
    assert browser.get("/queue").status == 303


def test_a_link_works_once(desk: Served) -> None:
    link = desk.link(COORDINATOR)
    first = desk.browser()
    answer = first.follow_link(link)
    assert answer.status == 303 and answer.location == "/queue"
    assert first.get("/queue").status == 200
    second = desk.browser()
    again = second.follow_link(link)
    assert again.status == 403
    assert not again.cookies
    assert second.get("/queue").status == 303


def test_opening_a_link_does_not_use_it(desk: Served) -> None:
    """Mail scanners and previews open links before people do: only the button signs in."""
    link = desk.link(COORDINATOR, "/team")
    scanner = desk.browser()
    for _ in range(3):
        page = scanner.open_link(link)
        assert page.status == 200 and not page.cookies
        assert "coordinator@example.test" in page.body
    assert scanner.get("/queue").status == 303
    answer = desk.browser().follow_link(link)
    assert answer.status == 303 and answer.location == "/team"


@pytest.mark.parametrize("origin", ["https://evil.example", "null"])
def test_another_site_cannot_sign_a_visitor_in(desk: Served, origin: str) -> None:
    link = desk.link(COORDINATOR)
    token = urlsplit(link).query.split("t=", 1)[1]
    browser = desk.browser()
    answer = browser.post("/auth", f"t={token}&next=/queue", {"Origin": origin})
    assert answer.status == 400 and not answer.cookies
    assert desk.browser().follow_link(link).status == 303  # not used up by the refused attempt


def test_a_link_is_dead_after_15_minutes(desk: Served) -> None:
    link = desk.link(COORDINATOR)
    desk.clock.advance(minutes=15, seconds=1)
    browser = desk.browser()
    assert browser.follow_link(link).status == 403
    assert browser.get("/queue").status == 303


def test_a_link_just_inside_15_minutes_works(desk: Served) -> None:
    link = desk.link(COORDINATOR)
    desk.clock.advance(minutes=14, seconds=50)
    assert desk.browser().follow_link(link).status == 303


def _payload(token: str) -> dict[str, object]:
    body = token.split(".")[0]
    return dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


def test_a_link_for_one_address_cannot_open_anothers_session(desk: Served) -> None:
    link = desk.link(TECH)
    token = urlsplit(link).query.split("t=", 1)[1]
    payload = _payload(token)
    assert payload["e"] == TECH
    # The same signature over the coordinator's address: refused, and the real link still works once.
    forged_body = (
        base64.urlsafe_b64encode(json.dumps({**payload, "e": COORDINATOR}).encode()).decode().rstrip("=")
    )
    forged = f"{forged_body}.{token.split('.', 1)[1]}"
    browser = desk.browser()
    assert browser.get(f"/auth?t={quote(forged)}").status == 403
    assert browser.get("/queue").status == 303
    answer = browser.follow_link(link)
    assert answer.status == 303
    page = browser.get("/queue")
    assert "Alicja Nowak · technician" in page.body
    assert "coordinator" not in page.body.split("<main>")[0]


def test_a_session_cookie_is_not_a_link(desk: Served) -> None:
    browser = desk.signed_in(COORDINATOR)
    value = browser.cookie.split("=", 1)[1]
    assert desk.browser().get(f"/auth?t={value}").status == 403
    assert desk.browser().post("/auth", f"t={value}").status == 403


def test_session_cookie_is_httponly_and_strict(desk: Served) -> None:
    answer = desk.browser().follow_link(desk.link(COORDINATOR))
    cookie = answer.cookies[0].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=" in cookie
    assert "secure" not in cookie  # plain HTTP on loopback: a Secure cookie would never come back


def test_session_cookie_is_secure_when_served_for_https(serve: object) -> None:
    desk: Served = serve(web={"listen": "", "base_url": "https://desk.example.test"})  # type: ignore[operator]
    answer = desk.browser().follow_link(desk.link(COORDINATOR))
    assert "secure" in answer.cookies[0].lower()


def test_a_session_expires(desk: Served) -> None:
    browser = desk.signed_in(COORDINATOR)
    desk.clock.advance(hours=12, seconds=1)
    assert browser.get("/queue").status == 303


def test_signing_out_ends_the_session_even_for_a_copied_cookie(desk: Served) -> None:
    browser = desk.signed_in(COORDINATOR)
    copied = browser.cookie
    answer = browser.post("/sign-out", "x=1")
    assert answer.status == 303 and answer.location == "/sign-in"
    assert browser.get("/queue").status == 303
    thief = desk.browser()
    thief.cookie = copied
    assert thief.get("/queue").status == 303


def test_sign_out_from_another_site_is_refused(desk: Served) -> None:
    browser = desk.signed_in(COORDINATOR)
    assert browser.post("/sign-out", "x=1", {"Origin": "https://evil.example"}).status == 400
    assert browser.get("/queue").status == 200


def test_an_inactive_technician_is_signed_out_at_once(desk: Served) -> None:
    from tickets.roster import change_technician

    browser = desk.signed_in(TECH)
    with desk.app.sessions() as session, session.begin():
        change_technician(session, TECH, ["active=false"], None)
    assert browser.get("/queue").status == 303


def _sign_in_mails(desk: Served) -> list[str]:
    with desk.app.sessions() as session:
        return list(
            session.scalars(
                select(OutboxMessage.recipient).where(OutboxMessage.kind == OutboxKind.SIGN_IN.value)
            )
        )


def test_asking_for_a_link_says_the_same_for_anyone_and_mails_only_staff(desk: Served) -> None:
    known = desk.browser().post("/sign-in", f"email={quote(TECH)}&next=/coverage")
    unknown = desk.browser().post("/sign-in", "email=stranger%40example.com")
    assert known.status == unknown.status == 200
    assert known.body == unknown.body
    # The mail is written after the answer has gone (so that answers take the same time).
    assert wait_until(lambda: _sign_in_mails(desk) == [TECH])
    time.sleep(0.5)
    assert _sign_in_mails(desk) == [TECH]
    with desk.app.sessions() as session:
        data = session.scalars(
            select(OutboxMessage.data).where(OutboxMessage.kind == OutboxKind.SIGN_IN.value)
        ).one()
    mail = parse(data)
    assert mail["To"] == "Alicja Nowak <alicja@example.test>"
    text = mail.get_body(("plain",))
    assert text is not None
    link = next(line for line in text.get_content().splitlines() if "/auth?t=" in line)
    answer = desk.browser().follow_link(link.strip())
    assert answer.status == 303 and answer.location == "/coverage"


@pytest.mark.parametrize(
    ("address", "subject", "words"),
    [
        (TECH, "Twój link do logowania", "Działa jeden raz"),  # languages pl, en: her first
        ("felix@example.test", "Ihr Anmeldelink", "Er funktioniert einmal"),
        ("dan@example.test", "Your sign-in link", "It works once"),
    ],
)
def test_the_sign_in_mail_is_in_the_language_of_whoever_asked(
    desk: Served, address: str, subject: str, words: str
) -> None:
    desk.browser().post("/sign-in", f"email={quote(address)}")
    assert wait_until(lambda: _sign_in_mails(desk) == [address])
    with desk.app.sessions() as session:
        data = session.scalars(
            select(OutboxMessage.data).where(OutboxMessage.kind == OutboxKind.SIGN_IN.value)
        ).one()
    mail = parse(data)
    assert str(mail["Subject"]).startswith(subject)
    text = mail.get_body(("plain",))
    assert text is not None and words in text.get_content()


def test_asking_for_links_is_rate_limited(desk: Served) -> None:
    answers = [desk.browser().post("/sign-in", f"email={quote(TECH)}").status for _ in range(PER_ADDRESS + 2)]
    assert answers[:PER_ADDRESS] == [200] * PER_ADDRESS
    assert answers[PER_ADDRESS:] == [429, 429]
    assert wait_until(lambda: len(_sign_in_mails(desk)) == PER_ADDRESS)
    time.sleep(0.5)
    assert len(_sign_in_mails(desk)) == PER_ADDRESS


def test_after_sign_in_only_pages_of_this_site(desk: Served) -> None:
    link = desk.link(COORDINATOR, "//evil.example/x")
    assert desk.browser().follow_link(link).location == "/queue"
