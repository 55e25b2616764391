"""Quote stripping on its own: what is left of a reply once its history and signature are cut."""

from __future__ import annotations

import pytest

from intake.quotes import MAX_SCAN_CHARS, new_content, strip_quoted, strip_signature


def test_gt_quotes_and_their_attribution_are_cut() -> None:
    text = "Thanks, that fixed it.\n\nOn Mon, 3 Nov 2026 at 10:00, Helpdesk <support@example.test> wrote:\n> Try again.\n> Bye"
    assert strip_quoted(text) == "Thanks, that fixed it."


def test_an_attribution_wrapped_onto_two_lines_is_cut_whole() -> None:
    text = "Done.\n\nOn Mon, 3 Nov 2026 at 10:00, Helpdesk\n<support@example.test> wrote:\n> Try again."
    assert strip_quoted(text) == "Done."


@pytest.mark.parametrize(
    "attribution",
    [
        "W dniu 3.11.2026 o 10:00, Helpdesk napisał:",
        "Am 03.11.2026 um 10:00 schrieb Helpdesk:",
        "Le 3 nov. 2026 à 10:00, Helpdesk a écrit :",
    ],
)
def test_attributions_in_other_languages(attribution: str) -> None:
    assert strip_quoted(f"Nowa treść.\n\n{attribution}\n> stara treść") == "Nowa treść."


def test_quotes_inline_between_answers_keep_the_answers() -> None:
    text = "> Is the printer on?\nYes it is.\n> Is it plugged in?\nYes."
    assert strip_quoted(text) == "Yes it is.\nYes."


@pytest.mark.parametrize(
    "separator",
    [
        "-----Original Message-----",
        "----- Ursprüngliche Nachricht -----",
        "-----Wiadomość oryginalna-----",
        "_" * 32,
    ],
)
def test_everything_below_a_separator_is_history(separator: str) -> None:
    assert strip_quoted(f"See attached.\n{separator}\nFrom: someone\nOld text") == "See attached."


def test_an_outlook_header_block_without_quote_marks_is_history() -> None:
    text = "Works now.\n\nFrom: Helpdesk\nSent: Monday\nTo: Anna\nSubject: [#4] Printer\n\nOld text"
    assert strip_quoted(text) == "Works now."
    german = "Geht wieder.\n\nVon: Helpdesk\nGesendet: Montag\nAn: Anna\nBetreff: Drucker\n\nAlt"
    assert strip_quoted(german) == "Geht wieder."


def test_a_single_from_line_in_the_text_is_not_a_header_block() -> None:
    text = "From: the third floor, the printer is broken.\nPlease help."
    assert strip_quoted(text) == text


def test_signature_separator_and_mobile_lines() -> None:
    assert strip_signature("Thanks\n-- \nAnna Kowalska\nACME") == "Thanks"
    assert strip_signature("Thanks\n\nSent from my iPhone") == "Thanks"
    assert strip_signature("Danke\n\nVon meinem iPhone gesendet") == "Danke"
    assert strip_signature("Dzięki\n\nWysłane z mojego telefonu") == "Dzięki"


def test_a_dash_line_that_is_no_separator_stays() -> None:
    text = "Steps:\n--verbose was set\nthen it failed"
    assert strip_signature(text) == text


def test_a_separator_high_up_in_a_long_mail_is_content() -> None:
    lines = ["Intro", "-- ", *(f"line {n}" for n in range(30))]
    text = "\n".join(lines)
    assert strip_signature(text) == text


def test_new_content_is_both_and_stripped() -> None:
    text = "\r\nIt prints again.\r\n\r\n-- \r\nAnna\r\n\r\nOn Mon, Helpdesk wrote:\r\n> old"
    assert new_content(text) == "It prints again."


def test_new_content_reads_only_the_start_of_a_huge_mail() -> None:
    text = "top\n" + "x" * MAX_SCAN_CHARS + "\n> quoted"
    assert len(new_content(text)) <= MAX_SCAN_CHARS
    assert new_content(text).startswith("top")


def test_a_mail_that_is_all_quote_has_no_new_content() -> None:
    assert new_content("> only\n> history") == ""
