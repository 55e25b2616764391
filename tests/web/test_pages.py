"""The pages against the real server: a technician sees their own tickets and the unassigned ones,
mail-derived text is shown as text, and every page carries the security headers."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select, update

from bench.desk_seed import COORDINATOR
from models.ticket import Ticket
from tests.conftest import deliver
from tests.mail import make_mail
from tests.web.conftest import Served

TECH = "alicja@example.test"
OTHER = "bartosz@example.test"
HOSTILE_SUBJECT = "<script>alert(1)</script> {{ 7*7 }} {% include 'x' %}"
HOSTILE_BODY = "Hi <img src=x onerror=alert(2)> and {{ config }} and ${7*7}\n<script>steal()</script>"


@pytest.fixture
def desk(serve: object) -> Served:
    served: Served = serve()  # type: ignore[operator]
    deliver(
        served.app,
        make_mail(subject="Mine", sender="a@example.com"),
        make_mail(subject="Someone else's", sender="b@example.com"),
        make_mail(subject="Nobody's", sender="c@example.com"),
        make_mail(subject=HOSTILE_SUBJECT, body=HOSTILE_BODY, sender="d@example.com"),
    )
    with served.app.sessions() as session, session.begin():
        ids = {t.subject: t.id for t in session.scalars(select(Ticket))}
        for subject, who in (("Mine", TECH), ("Someone else's", OTHER), ("Nobody's", None)):
            session.execute(update(Ticket).where(Ticket.id == ids[subject]).values(assignee=who))
    served.ids = ids  # type: ignore[attr-defined]
    return served


def test_a_technician_cannot_open_another_technicians_ticket(desk: Served) -> None:
    ids = desk.ids  # type: ignore[attr-defined]
    browser = desk.signed_in(TECH)
    assert browser.get(f"/tickets/{ids['Mine']}").status == 200
    assert browser.get(f"/tickets/{ids['Nobody' + chr(39) + 's']}").status == 200
    refused = browser.get(f"/tickets/{ids['Someone else' + chr(39) + 's']}")
    assert refused.status == 404
    assert "Someone" not in refused.body
    # The same answer as a ticket that does not exist: nothing to learn by probing.
    assert browser.get("/tickets/99999").status == 404
    queue = browser.get("/queue").body
    assert "Mine" in queue and "Nobody&#39;s" in queue
    assert "Someone else" not in queue
    # A signed reply address for their own ticket, as their mail carries; none for the others.
    assert "support+w" in browser.get(f"/tickets/{ids['Mine']}").body
    assert "support+" not in browser.get(f"/tickets/{ids['Nobody' + chr(39) + 's']}").body


def test_a_coordinator_sees_every_ticket(desk: Served) -> None:
    ids = desk.ids  # type: ignore[attr-defined]
    browser = desk.signed_in(COORDINATOR)
    assert browser.get(f"/tickets/{ids['Someone else' + chr(39) + 's']}").status == 200
    queue = browser.get("/queue").body
    assert all(s in queue for s in ("Mine", "Someone else", "Nobody"))


def test_script_and_template_syntax_in_mail_are_shown_as_text(desk: Served) -> None:
    number = desk.ids[HOSTILE_SUBJECT]  # type: ignore[attr-defined]
    browser = desk.signed_in(COORDINATOR)
    for page in (browser.get("/queue").body, browser.get(f"/tickets/{number}").body):
        assert "<script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        # Rendered once, never as a template: the braces arrive as typed.
        assert "{{ 7*7 }} {% include &#39;x&#39; %}" in page
    ticket = browser.get(f"/tickets/{number}").body
    assert "&lt;img src=x onerror=alert(2)&gt;" in ticket
    assert "{{ config }}" in ticket
    assert "&lt;script&gt;steal()&lt;/script&gt;" in ticket


@pytest.mark.parametrize(
    "path", ["/queue", "/tickets/1", "/team", "/sla", "/coverage", "/reports", "/sign-in"]
)
def test_security_headers(desk: Served, path: str) -> None:
    answer = desk.signed_in(COORDINATOR).get(path)
    assert answer.status == 200
    csp = answer.headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives["default-src"] == ["'none'"]  # no script-src: scripts fall back to none
    assert "script-src" not in directives
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert directives["frame-ancestors"] == ["'none'"]
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["referrer-policy"] == "same-origin"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "<script" not in answer.body
    assert 'http-equiv="refresh"' in answer.body or path == "/sign-in"


def test_assets_are_served_here(desk: Served) -> None:
    browser = desk.signed_in(COORDINATOR)
    page = browser.get("/queue").body
    for url in re.findall(r'(?:href|src)="([^"]+)"', page):
        assert url.startswith("/"), url
    css = browser.get("/static/style.css")
    assert css.status == 200 and "text/css" in css.headers["content-type"]


def test_the_queue_filters_and_sorts_by_what_is_due_next(desk: Served) -> None:
    browser = desk.signed_in(COORDINATOR)
    page = browser.get("/queue?assignee=").body
    assert "Nobody" in page and "Mine" not in page
    page = browser.get(f"/queue?assignee={TECH}").body
    assert "Mine" in page and "Nobody" not in page
    assert browser.get("/queue?priority=bogus&sla=nonsense&status=x").status == 200
    assert "left" in browser.get("/queue").body


def test_the_queue_shows_a_change_at_the_next_refresh(desk: Served) -> None:
    """Rows and clocks are kept between refreshes only while their ticket is unchanged."""
    from models.ticket import Priority, TicketStatus

    ids = desk.ids  # type: ignore[attr-defined]
    browser = desk.signed_in(COORDINATOR)
    assert "Mine" in browser.get("/queue").body
    with desk.app.sessions() as session, session.begin():
        session.execute(update(Ticket).where(Ticket.id == ids["Mine"]).values(status=TicketStatus.RESOLVED))
        nobody = session.get(Ticket, ids["Nobody's"])
        assert nobody is not None
        nobody.priority = Priority.URGENT
        nobody.subject = "Nobody's, now urgent"
    page = browser.get("/queue").body
    assert ">Mine<" not in page
    assert "Nobody&#39;s, now urgent" in page
    urgent = browser.get("/queue?priority=urgent").body
    assert "Nobody&#39;s, now urgent" in urgent
