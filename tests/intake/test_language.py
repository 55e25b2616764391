"""Language detection on its own: a stop-word vote with diacritics as extra weight."""

from __future__ import annotations

import pytest

from intake.language import MAX_CHARS, detect_language


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Hello, the printer on the third floor is not working since this morning. Please help.", "en"),
        ("Dzień dobry, drukarka na trzecim piętrze nie działa od rana. Proszę o pomoc.", "pl"),
        ("Guten Tag, der Drucker im dritten Stock funktioniert seit heute Morgen nicht. Bitte helfen.", "de"),
        ("Bonjour, l'imprimante ne marche pas depuis ce matin. Merci pour votre aide.", "fr"),
        ("Hola, la impresora no funciona desde esta mañana. Gracias por favor.", "es"),
        ("Hallo, de printer werkt niet sinds vanochtend. Bedankt voor de hulp.", "nl"),
    ],
)
def test_the_languages_the_desk_meets(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_diacritics_decide_a_short_polish_text() -> None:
    assert detect_language("Zażółć gęślą jaźń") == "pl"


def test_a_german_eszett_and_umlauts_weigh_for_german() -> None:
    assert detect_language("Grüße aus München, Straße 5") == "de"


def test_no_words_or_no_votes_give_the_default() -> None:
    assert detect_language("", default="pl") == "pl"
    assert detect_language("12345 678 !!!", default="de") == "de"
    assert detect_language("xyzzy plugh", default="en") == "en"


def test_a_tie_keeps_the_default_when_it_is_among_the_best() -> None:
    # "die" is a German stop word and "the" an English one: one vote each.
    assert detect_language("the die", default="en") == "en"
    assert detect_language("the die", default="de") == "de"


def test_only_the_start_is_read() -> None:
    text = "x " * MAX_CHARS + "dzień dobry proszę nie działa"
    assert detect_language(text, default="en") == "en"
