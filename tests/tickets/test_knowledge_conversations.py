"""The knowledge base, as requesters and technicians live it: through the real SMTP listener and a sink.

A technician publishes a resolution with `#publish`; a later requester with the same problem in
the same language finds it in the acknowledgment, one with another problem or language does not;
"gelöst" resolves the ticket as self-service, the technician is told, the report counts it. The
article never carries the requester's personal data.
"""

from __future__ import annotations

import json
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from helpdesk.cli import main
from helpdesk.report import build_report
from models.loop import Article, ArticleVersion
from models.ticket import Ticket, TicketStatus
from tests.mail import make_mail
from tests.tickets import test_technicians as conversation
from tests.tickets.test_loop_conversations import answer, last_to
from tests.tickets.test_technicians import TechnicianDesk
from tickets.knowledge import edit

desk = conversation.desk  # the same desk: roster, rules, SMTP listener and sink

ZOFIA = "Zofia Kowalska <zofia@klient.example.pl>"
ALICJA = "alicja@example.test"
KASIA = "kasia@example.test"
PRINTER_PL = (
    "Dzień dobry, drukarka w pokoju 12 nie drukuje od rana, zadania wiszą w kolejce wydruku.\n\n"
    "Zofia Kowalska\ntel. +48 601 234 567\nul. Polna 5, 00-950 Warszawa"
)
RESOLUTION_PL = (
    "Zadzwoniłam do Zofii pod 601-234-567. Zatrzymaj usługę bufora wydruku, usuń zadania z kolejki "
    "wydruku i uruchom drukarkę ponownie; potem wydrukuj stronę testową."
)


def new_ticket(desk: TechnicianDesk, sender: str, subject: str, body: str) -> tuple[int, EmailMessage]:
    address = sender.split("<")[1].rstrip(">")
    desk.send(make_mail(sender=sender, subject=subject, body=body))
    with desk.app.sessions() as s:
        number = max(s.scalars(select(Ticket.id)))
    return number, last_to(desk, address)


def assignee_of(desk: TechnicianDesk, number: int) -> str:
    assignee = desk.ticket(number).assignee
    assert assignee is not None
    return assignee


def published_polish_article(desk: TechnicianDesk) -> Article:
    number, _ = new_ticket(desk, ZOFIA, "Drukarka nie drukuje", PRINTER_PL)
    answer(
        desk,
        ALICJA,
        ALICJA,
        f"#resolve {RESOLUTION_PL}\n#publish Drukarka nie drukuje: zablokowana kolejka wydruku",
    )
    assert desk.ticket(number).status is TicketStatus.RESOLVED
    with desk.app.sessions() as s:
        article = s.scalars(select(Article)).one()
        s.expunge(article)
    return article


def test_a_published_article_keeps_language_category_source_and_no_personal_data(
    desk: TechnicianDesk,
) -> None:
    article = published_polish_article(desk)
    assert (article.language, article.category, article.source_tickets, article.version) == (
        "pl",
        "printing",
        [1],
        1,
    )
    assert article.title == "Drukarka nie drukuje: zablokowana kolejka wydruku"
    assert "usuń zadania z kolejki wydruku" in article.body
    for personal in ("Zofi", "Kowalsk", "601", "234 567", "zofia@", "Polna", "00-950"):
        assert personal not in article.body
    assert "[name]" in article.body and "[phone]" in article.body
    with desk.app.sessions() as s:
        versions = s.scalars(select(ArticleVersion)).all()
        assert [(v.version, v.by) for v in versions] == [(1, ALICJA)]
    assert "kb_published" in desk.events(1)


def test_the_article_is_offered_to_the_same_problem_in_the_same_language_only(desk: TechnicianDesk) -> None:
    article = published_polish_article(desk)
    _, same = new_ticket(
        desk,
        "Piotr Nowak <piotr.nowak@klient.example.pl>",
        "Nie mogę drukować",
        "Drukarka nie drukuje, wszystkie zadania stoją w kolejce wydruku. Co robić?",
    )
    text = same.get_content()
    assert "ta odpowiedź na podobny problem może pomóc" in text
    assert f"{article.title} (KB-{article.id})" in text
    assert "Zatrzymaj usługę bufora wydruku" in text  # the excerpt
    assert "„rozwiązane”" in text
    _, other = new_ticket(
        desk,
        "Ewa Lis <ewa@klient.example.pl>",
        "Nie działa VPN",
        "Dzień dobry, od wczoraj nie mogę połączyć się z VPN z domu, pojawia się błąd certyfikatu.",
    )
    assert "KB-" not in other.get_content()
    _, english = new_ticket(
        desk,
        "Bob Client <bob.client@example.com>",
        "Printer does not print",
        "Hello, the printer does not print, all jobs are stuck in the print queue.",
    )
    assert "KB-" not in english.get_content()


def test_geloest_resolves_the_ticket_as_self_service_and_the_technician_is_told(desk: TechnicianDesk) -> None:
    first, _ = new_ticket(
        desk,
        "Hans Meier <hans@kunde.example.de>",
        "Drucker druckt nicht",
        "Guten Tag, der Drucker im dritten Stock druckt nicht, die Druckaufträge hängen in der Warteschlange.",
    )
    technician = assignee_of(desk, first)
    answer(
        desk,
        technician,
        technician,
        "#resolve Druckwarteschlange leeren: Druckspooler-Dienst neu starten, hängende Aufträge löschen, "
        "Drucker aus- und wieder einschalten.\n#publish Drucker druckt nicht: Warteschlange hängt",
    )
    number, ack = new_ticket(
        desk,
        "Greta Schulz <greta@kunde.example.de>",
        "Drucker geht nicht",
        "Hallo, unser Drucker druckt nicht mehr, alle Aufträge bleiben in der Warteschlange hängen.",
    )
    text = ack.get_content()
    assert ack["Content-Language"] == "de"
    assert "Diese Antwort auf ein ähnliches Problem könnte helfen" in text
    assert "Drucker druckt nicht: Warteschlange hängt (KB-1)" in text
    assert "„gelöst“" in text
    second_technician = assignee_of(desk, number)
    before = len(desk.mails_to(second_technician))
    answer(desk, "Greta Schulz <greta@kunde.example.de>", "greta@kunde.example.de", "gelöst, danke!")
    ticket = desk.ticket(number)
    assert ticket.status is TicketStatus.RESOLVED
    assert ticket.resolution == "Solved by the requester with article KB-1."
    assert "self_service" in desk.events(number)
    told = desk.mails_to(second_technician)[before:]
    assert len(told) == 1 and "KB-1" in told[0].message.get_content()
    confirmation = last_to(desk, "greta@kunde.example.de").get_content()
    assert "schön, dass die Antwort geholfen hat" in confirmation
    assert "Wie zufrieden sind Sie?" in confirmation
    with desk.app.sessions() as s:
        report = build_report(s, now=desk.clock.now, days=7, sla=desk.app.settings.sla)
    assert report["self_service"] == 1
    assert report["knowledge"] == {"acknowledgments_with_articles": 1, "published": 1}


def test_publish_without_a_resolution_publishes_nothing(desk: TechnicianDesk) -> None:
    new_ticket(desk, ZOFIA, "Drukarka nie drukuje", PRINTER_PL)
    answer(desk, ALICJA, ALICJA, "#publish Drukarka\n\nSprawdzę to.")
    with desk.app.sessions() as s:
        assert s.scalars(select(Article)).all() == []
    assert desk.ticket(1).status is TicketStatus.OPEN
    assert "commands_refused" in desk.events(1)


def test_a_coordinator_publishes_a_resolved_tickets_resolution(desk: TechnicianDesk) -> None:
    new_ticket(desk, ZOFIA, "Drukarka nie drukuje", PRINTER_PL)
    answer(desk, ALICJA, ALICJA, f"#resolve {RESOLUTION_PL}")
    answer(desk, ZOFIA, "zofia@klient.example.pl", "1 - nikt nie oddzwonił")  # the coordinator hears of it
    answer(
        desk, "Marta Coordinator <coord@example.test>", "coord@example.test", "#publish Kolejka wydruku stoi"
    )
    with desk.app.sessions() as s:
        article = s.scalars(select(Article)).one()
        assert (article.created_by, article.title, article.source_tickets) == (
            "coord@example.test",
            "Kolejka wydruku stoi",
            [1],
        )


def run(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> str:
    capsys.readouterr()
    code = main(["--config", str(config), *argv])
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def test_kb_command_line_lists_edits_unpublishes_and_exports(
    desk: TechnicianDesk, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    article = published_polish_article(desk)
    config = tmp_path / "helpdesk.toml"
    config.write_text(
        f'[mail]\naddress = "support@example.test"\nsecret = "test-secret"\n'
        f'[database]\nurl = "{desk.app.settings.database.url}"\n'
    )
    listed = json.loads(run(capsys, config, "kb", "list", "--json"))
    assert [(a["id"], a["language"], a["category"], a["status"]) for a in listed] == [
        (article.id, "pl", "printing", "published")
    ]
    run(
        capsys,
        config,
        "kb",
        "edit",
        f"KB-{article.id}",
        "--title",
        "Kolejka wydruku stoi",
        "--note",
        "clearer",
    )
    shown = json.loads(run(capsys, config, "kb", "show", str(article.id), "--json"))
    assert shown["title"] == "Kolejka wydruku stoi" and shown["version"] == 2
    assert [(v["version"], v["note"]) for v in shown["versions"]] == [
        (1, "published from ticket #1"),
        (2, "clearer"),
    ]
    site = tmp_path / "site"
    run(capsys, config, "kb", "export", "--html", str(site))
    index = (site / "index.html").read_text(encoding="utf-8")
    page = (site / f"kb-{article.id}.html").read_text(encoding="utf-8")
    assert "Kolejka wydruku stoi" in index and "Kolejka wydruku stoi" in page
    assert "http://" not in index + page and "https://" not in index + page  # nothing external
    assert '<script id="index" type="application/json">' in index
    run(capsys, config, "kb", "unpublish", str(article.id))
    assert json.loads(run(capsys, config, "kb", "list", "--json")) == []
    assert len(json.loads(run(capsys, config, "kb", "list", "--all", "--json"))) == 1
    # Unpublished: no longer offered to the next requester with the same problem.
    _, ack = new_ticket(
        desk,
        "Piotr Nowak <piotr.nowak@klient.example.pl>",
        "Nie mogę drukować",
        "Drukarka nie drukuje, wszystkie zadania stoją w kolejce wydruku.",
    )
    assert "KB-" not in ack.get_content()
    run(capsys, config, "kb", "publish", str(article.id))
    assert [a["status"] for a in json.loads(run(capsys, config, "kb", "list", "--json"))] == ["published"]


def test_a_routed_request_is_offered_articles_of_its_category_only(desk: TechnicianDesk) -> None:
    article = published_polish_article(desk)
    with desk.app.sessions() as s:
        edit(s, article.id, by="cli", now=desk.clock.now, category="network", note="recategorised")
        s.commit()
    _, ack = new_ticket(
        desk,
        "Piotr Nowak <piotr.nowak@klient.example.pl>",
        "Nie mogę drukować",
        "Drukarka nie drukuje, wszystkie zadania stoją w kolejce wydruku. Co robić?",
    )
    assert desk.ticket(2).category == "printing"  # the printers rule routed it
    assert "KB-" not in ack.get_content()
