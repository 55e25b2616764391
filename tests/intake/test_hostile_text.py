"""Text a stranger wrote to be slow: every stage that reads mail text is linear in it (issue 8, finding 1).

Each hostile input is about a megabyte; a stage with a quadratic worst case takes minutes on it, a
linear one well under a second. The bounds leave room for a busy machine, not for a square.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest

from intake.automatic import detect_automatic
from intake.config import IntakeConfig
from intake.language import detect_language
from intake.parse import parse_email
from intake.quotes import _ATTRIBUTION, new_content
from notify.config import MailIdentity
from tests.hostile import schrieb_line

DATA = Path(__file__).resolve().parent.parent / "data"
SLOW_MAIL = DATA / "slow-attribution-schrieb-440k-line.eml"
MB = 1_000_000


def seconds(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


@pytest.mark.timeout(120)
def test_the_mail_that_held_the_worker_for_a_minute_parses_in_well_under_a_second() -> None:
    # 600 KB, one 440,000-character "... schrieb ..." line above a quote: 57 s before.
    data = SLOW_MAIL.read_bytes()
    took = seconds(lambda: parse_email(data, IntakeConfig()))
    assert took < 2.0, f"parsing took {took:.1f} s"


@pytest.mark.timeout(120)
def test_the_attribution_expression_itself_is_linear_in_the_line() -> None:
    # The expression alone, without the line-length cap in front of it.
    took = seconds(lambda: _ATTRIBUTION.match(schrieb_line(400_000)))
    assert took < 0.5, f"one line took {took:.1f} s"
    assert _ATTRIBUTION.match("Am 1. März 2024 um 10:00 schrieb Anna Beispiel <anna@example.com>:")
    assert _ATTRIBUTION.match("Anna Beispiel <anna@example.com> schrieb am 1. März:")
    assert not _ATTRIBUTION.match("Anna schrieb uns gestern, dass der Drucker streikt.")


HOSTILE_BODIES: dict[str, str] = {
    "schrieb line above a quote": schrieb_line(MB) + "\n> q\n",
    "many schrieb lines each above a quote": ("Anna schrieb " * 70 + "x\n> q\n") * (MB // 920),
    "wrote line above a quote": ("Bob wrote " * (MB // 10)) + "\n> q\n",
    "long wrapped attribution pair": ("On " + "x " * (MB // 4)) + "\n" + ("y " * (MB // 4)) + "\n> q\n",
    "dashes": "-" * MB + "\n> q\n",
    "underscores then letter": "_" * MB + "x\n",
    "reply-above separator with endless dashes": "-- reply above this line " + "-" * MB + "x\n",
    "one giant word": "a" * MB,
    "giant header-like words": ("From" + "a" * 1000 + ": x\n") * (MB // 1010),
    "header block lines": ("From: a\nSent: b\nTo: c\nSubject: d\n" * (MB // 36)),
    "blank lines of spaces": "x\n" + " \n" * (MB // 2),
    "signature-like tail": "text\n" + ("von meinem " + "x " * (MB // 30) + "\n") * 15,
    "quote markers only": "> \n" * (MB // 3),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
def test_quote_and_signature_stripping_is_linear(name: str) -> None:
    text = HOSTILE_BODIES[name]
    took = seconds(lambda: new_content(text))
    assert took < 2.0, f"{name}: {took:.1f} s"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
def test_language_detection_is_bounded(name: str) -> None:
    text = HOSTILE_BODIES[name]
    took = seconds(lambda: detect_language(text))
    assert took < 0.5, f"{name}: {took:.1f} s"


@pytest.mark.timeout(120)
def test_five_megabytes_of_inline_html_parse_in_a_few_seconds() -> None:
    # inscriptis grows with the square of a long line: 31 s for this mail before. Against the
    # same mail a fifth as long, timed in the same run (so a busy machine slows both): linear
    # work takes about five times as long, quadratic twenty-five.
    def html_mail(repeats: int) -> bytes:
        msg = EmailMessage()
        msg["From"] = "mallory@example.com"
        msg.set_content("<p>" + "word <b>bold</b> " * repeats + "</p>", subtype="html")
        return msg.as_bytes()

    small, large = html_mail(60_000), html_mail(300_000)
    # The better of two tries each: a shared machine stalls single runs by seconds.
    small_took = max(min(seconds(lambda: parse_email(small, IntakeConfig())) for _ in range(2)), 0.05)
    took = min(seconds(lambda: parse_email(large, IntakeConfig())) for _ in range(2))
    assert took < 12 * small_took, f"{took:.2f} s for 5x the text that took {small_took:.2f} s"
    assert took < 30.0, f"{took:.1f} s"


HOSTILE_SUBJECTS = {
    "delivery words": "delivery " * (MB // 9),
    "auto words": "auto " * (MB // 5),
    "mailer-daemon words": "mailer-daemon " * (MB // 14),
    "one giant word": "x" * MB,
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(HOSTILE_SUBJECTS))
def test_automatic_mail_detection_is_linear_in_the_subject(name: str) -> None:
    from tests.mail import make_mail

    mail = parse_email(
        make_mail(subject="x", sender=f"{'mailer-daemon' if 'daemon' in name else 'a'}@example.com"),
        IntakeConfig(),
    )
    from dataclasses import replace

    # Against a subject a quarter as long, timed in the same run: linear work takes about
    # four times as long, quadratic sixteen (the floor keeps timer noise out of tiny figures).
    subject = HOSTILE_SUBJECTS[name]
    identity = MailIdentity(address="support@example.test", secret="s")
    quarter = replace(mail, subject=subject[: len(subject) // 4])
    hostile = replace(mail, subject=subject)
    quarter_took = max(
        min(seconds(lambda: detect_automatic(quarter, identity, "a@example.com")) for _ in range(2)), 0.02
    )
    took = min(seconds(lambda: detect_automatic(hostile, identity, "a@example.com")) for _ in range(2))
    assert took < 8 * quarter_took, f"{name}: {took:.2f} s for 4x the text that took {quarter_took:.2f} s"
    assert took < 5.0, f"{name}: {took:.1f} s"
