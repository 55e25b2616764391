"""What a requester's reply says: a rating (digit or word, en/pl/de), "solved", or neither; the
requester's personal data scrubbed from an article; business days counted as the desk's calendar."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from routing.calendar import BusinessHours, HolidayCalendar
from routing.shifts import parse_schedule
from tickets.feedback import Rating, read_rating, says_solved
from tickets.knowledge import Personal, scrub
from tickets.lifecycle import add_business_days


@pytest.mark.parametrize(
    ("text", "rating"),
    [
        ("4, thanks", Rating(4, "thanks")),
        ("5", Rating(5, "")),
        ("  \n3/5 - slow but fine\n\n> quoted", Rating(3, "slow but fine\n> quoted")),
        ("2 z 5. Długo czekałam.", Rating(2, "Długo czekałam.")),
        ("Gut, danke!", Rating(4, "danke!")),
        ("sehr gut", Rating(5, "")),
        ("słabo - czekałam dwa dni", Rating(2, "czekałam dwa dni")),
        ("Excellent!", Rating(5, "")),
    ],
)
def test_a_rating_starts_the_reply(text: str, rating: Rating) -> None:
    assert read_rating(text) == rating


@pytest.mark.parametrize(
    "text",
    [
        "Still broken: it prints blank pages again.",
        "Good morning, the printer is broken again",
        "6 pages came out blank",
        "12 people cannot print",
        "Gut wäre, wenn der Drucker wieder ginge",
        "",
    ],
)
def test_a_new_problem_is_not_a_rating(text: str) -> None:
    assert read_rating(text) is None


@pytest.mark.parametrize("text", ["solved", "Gelöst, danke!", "rozwiązane", "Thanks!\n#solved\n", "SOLVED."])
def test_solved_in_each_language(text: str) -> None:
    assert says_solved(text)


@pytest.mark.parametrize("text", ["not solved", "Is it solved yet?", "solvedness", "nie rozwiązane"])
def test_not_solved(text: str) -> None:
    assert not says_solved(text)


def test_the_requesters_data_is_scrubbed_and_the_technicians_words_stay() -> None:
    personal = Personal(
        names=frozenset({"Zofia Kowalska"}),
        addresses=frozenset({"zofia@klient.example.pl"}),
        texts=(
            "Drukarka w pokoju 12 nie drukuje od rana.\nTel. +48 601 234 567\nul. Polna 5, 00-950 Warszawa",
        ),
    )
    text = (
        "Called Zofii Kowalskiej at (601-234-567), mail zofia@klient.example.pl; "
        "the printer in room 12 needed a new fuser. Drukarka w pokoju 12 nie drukuje od rana. "
        "Our hotline is 22 111 22 33; spare parts from parts@example.test; office 00-950."
    )
    assert scrub(text, personal) == (
        "Called [name] [name] at ([phone]), mail [address]; "
        "the printer in room 12 needed a new fuser. […]. "
        "Our hotline is 22 111 22 33; spare parts from parts@example.test; office [postal code]."
    )


def test_business_days_skip_weekends_and_holidays() -> None:
    hours = BusinessHours(parse_schedule(["mon-fri 09:00-17:00"]), "Europe/Warsaw")
    friday = datetime(2026, 12, 18, 9, 0, tzinfo=UTC)  # 10:00 in Warsaw
    assert add_business_days(friday, 3, hours, HolidayCalendar()) == datetime(2026, 12, 23, 9, 0, tzinfo=UTC)
    christmas = HolidayCalendar(frozenset({datetime(2026, 12, 24).date(), datetime(2026, 12, 25).date()}))
    assert add_business_days(friday, 4, hours, christmas) == datetime(2026, 12, 28, 9, 0, tzinfo=UTC)
