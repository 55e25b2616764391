"""Routing by the trained classifier, and the admin's retrain / model commands."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from helpdesk.app import build_app
from helpdesk.cli import main
from helpdesk.settings import load_settings
from models.ticket import Ticket, TicketStatus
from tests.cli.runner import run_json
from tests.mail import make_mail

NETWORK = [
    ("VPN disconnects", "The VPN drops every few minutes since this morning."),
    ("No internet on floor {n}", "Network cable plugged in but no connection at desk {n}."),
    ("Wifi slow", "The wireless network in meeting room {n} is very slow."),
    ("VPN nie działa", "Nie mogę połączyć się z VPN z domu."),
    ("Netzwerk weg", "Das Netzwerk im Raum {n} funktioniert nicht, kein Internet."),
]
PRINTING = [
    ("Printer jam", "The printer on floor {n} has a paper jam again."),
    ("Cannot print", "Printing to the office printer fails with an error {n}."),
    ("Toner empty", "The printer in room {n} says toner is empty."),
    ("Drukarka nie drukuje", "Drukarka w pokoju {n} nie drukuje."),
    ("Drucker druckt nicht", "Der Drucker im Raum {n} druckt nichts."),
]


def write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["short", "description", "group"])
        writer.writerows(rows)
    return path


def labelled(count: int, seed: int = 1) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        label, pool = ("network", NETWORK) if i % 2 else ("printing", PRINTING)
        subject, body = rng.choice(pool)
        n = rng.randrange(1, 30)
        rows.append((subject.format(n=n), body.format(n=n), label))
    return rows


def test_init_trains_the_starter_models_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    out = capsys.readouterr().out
    assert out.count("trained and activated the starter model") == 2
    listing = run_json(capsys, "model", "list", "--json")
    assert sorted(m["target"] for m in listing["models"] if m["active"]) == ["category", "priority"]
    assert main(["init"]) == 0
    assert "trained" not in capsys.readouterr().out


def test_new_mail_is_routed_by_the_starter_model_and_show_says_why(desk: Path, capsys: Any) -> None:
    mail = desk / "m.eml"
    mail.write_bytes(
        make_mail(subject="I forgot my password", body="I forgot my password and my account is locked out.")
    )
    run_json(capsys, "ingest", "--json", str(mail))
    shown = run_json(capsys, "tickets", "show", "1", "--json")
    decision = shown["routing"]["category"]
    assert shown["category"] == "accounts"
    assert decision["source"] == "model"
    assert decision["model_version"].startswith("category-")
    assert 0.0 < decision["confidence"] <= 1.0
    assert decision["top_terms"]
    capsys.readouterr()
    assert main(["tickets", "show", "1"]) == 0
    text = capsys.readouterr().out
    assert "by model:category-" in text
    assert "terms:" in text


def test_retrain_from_csv_activate_refuse_worse_force_and_rollback(desk: Path, capsys: Any) -> None:
    good = write_csv(desk / "good.csv", labelled(120))
    first = run_json(
        capsys,
        "retrain",
        "--csv",
        str(good),
        "--text",
        "short,description",
        "--label",
        "group",
        "--activate",
        "--force",
        "--json",
    )
    assert first["activated"] is True
    for key in ("accuracy", "macro_f1", "n", "precision_at_coverage", "per_class"):
        assert key in first["evaluation"]
    assert set(first["evaluation"]["precision_at_coverage"]) >= {"0.5", "0.6", "0.8"}
    # A model trained on shuffled labels is worse on the same held-out tickets: refused.
    noisy_rows = labelled(120)
    labels = [row[2] for row in noisy_rows]
    random.Random(7).shuffle(labels)
    noisy = write_csv(
        desk / "noisy.csv", [(a, b, label) for (a, b, _), label in zip(noisy_rows, labels, strict=True)]
    )
    retrain_noisy = [
        "retrain",
        "--csv",
        str(noisy),
        "--text",
        "short,description",
        "--label",
        "group",
        "--activate",
    ]
    capsys.readouterr()
    code = main([*retrain_noisy, "--json"])
    refused = json.loads(capsys.readouterr().out)
    assert code == 3
    assert refused["refused"] is True
    assert refused["comparison"]["worse"] is True
    models = run_json(capsys, "model", "list", "--target", "category", "--json")["models"]
    active = [m["version"] for m in models if m["active"]]
    assert active == [first["version"]]
    forced = run_json(capsys, *retrain_noisy, "--force", "--json")
    assert forced["activated"] is True
    assert forced["forced"] is True
    back = run_json(capsys, "model", "rollback", "--json")
    assert back["version"] == first["version"]


def test_model_evaluate_csv_json(desk: Path, capsys: Any) -> None:
    data = write_csv(desk / "eval.csv", labelled(40, seed=3))
    result = run_json(
        capsys,
        "model",
        "evaluate",
        "--csv",
        str(data),
        "--text",
        "short,description",
        "--label",
        "group",
        "--target",
        "category",
        "--json",
    )
    for key in ("accuracy", "macro_f1", "n", "precision_at_coverage"):
        assert key in result
    assert result["n"] == 40


def test_retrain_from_db_learns_the_corrected_labels(desk: Path, capsys: Any) -> None:
    rows = labelled(60, seed=5)
    paths = []
    for i, (subject, body, _) in enumerate(rows):
        path = desk / f"t{i}.eml"
        path.write_bytes(make_mail(subject=subject, body=body, sender=f"user{i}@example.com"))
        paths.append(str(path))
    run_json(capsys, "ingest", "--json", *paths)
    settings = load_settings(desk / "helpdesk.toml")
    app = build_app(settings)
    with app.sessions() as session:
        tickets = list(session.scalars(select(Ticket).order_by(Ticket.id)))
        for ticket, (_, _, label) in zip(tickets, rows, strict=True):
            ticket.category = label  # what technicians corrected it to
            ticket.status = TicketStatus.RESOLVED
        session.commit()
    app.close()
    report = run_json(capsys, "retrain", "--from-db", "--activate", "--force", "--json")
    assert report["training"]["examples"] == 60
    assert report["activated"] is True
    assert sorted(report["evaluation"]["per_class"]) == ["network", "printing"]


def test_retrain_with_nothing_to_learn_says_so(desk: Path, capsys: Any) -> None:
    capsys.readouterr()
    assert main(["retrain", "--from-db"]) == 65
    assert "nothing to learn" in capsys.readouterr().err


def test_a_broken_model_file_does_not_stop_routing(desk: Path, capsys: Any) -> None:
    for path in (desk / "var" / "models").glob("category-*.npz"):
        path.write_bytes(b"not a model")
    mail = desk / "m.eml"
    mail.write_bytes(make_mail(subject="I forgot my password"))
    result = run_json(capsys, "ingest", "--json", str(mail))
    assert result["tickets_created"] == 1
    shown = run_json(capsys, "tickets", "show", "1", "--json")
    assert shown["routing"]["category"]["source"] != "model"
