"""`helpdesk status` tells the coordinator what the budgets on automatic mail stopped in the last hour."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpdesk.cli import main
from tests.cli.runner import run_json
from tests.mail import make_mail


def test_status_shows_suppressed_acknowledgments_after_a_forged_flood(
    desk: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HELPDESK_LIMITS_AUTOMATIC_PER_HOUR", "10")
    monkeypatch.setenv("HELPDESK_LIMITS_AUTOMATIC_PER_DOMAIN_PER_HOUR", "4")
    files = []
    for i in range(30):
        path = desk / f"forged-{i}.eml"
        domain = "victim.example" if i < 6 else f"domain-{i}.example"
        path.write_bytes(make_mail(sender=f"forged-{i}@{domain}", subject=f"Offer {i}"))
        files.append(str(path))
    result = run_json(capsys, "ingest", "--json", *files)
    assert result["tickets_created"] == 30
    assert len(list((desk / "var" / "sent" / "new").iterdir())) == 10
    status = run_json(capsys, "status", "--json")
    auto = status["automatic_mail_last_hour"]
    assert auto["automatic_sent"] == 10
    assert auto["suppressed"] == 20
    assert auto["suppressed_domain"] == 2  # victim.example: 6 forged senders, 4 answered
    assert auto["suppressed_global"] == 18
    assert auto["suppressed_domains"] == {"victim.example": 2}
    assert main(["status"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("automatic mail"))
    assert "10 of 10 to unauthenticated senders" in line
    assert "suppressed 20" in line
