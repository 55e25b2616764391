"""The starter models trained from the seed tickets route obvious mail in English, Polish and German."""

from __future__ import annotations

import pytest

from routing.model_store import ModelStore
from routing.seed import CATEGORIES, PRIORITIES, seed_examples

CATEGORY_CASES = [
    ("Drukarka nie drukuje", "", "printing"),
    ("VPN Verbindung bricht ständig ab", "", "network"),
    ("I forgot my password", "", "accounts"),
    ("Outlook does not receive new emails", "my inbox stays empty since this morning", "email"),
    ("Laptop startet nicht", "Der Bildschirm bleibt schwarz, nichts passiert beim Einschalten", "hardware"),
    ("Podejrzany mail", "Dostałem maila z linkiem do fałszywej strony logowania, chyba phishing", "security"),
    ("Excel stürzt ständig ab", "Beim Öffnen der Datei schließt sich Excel", "software"),
    ("Brak dostępu do internetu", "Wi-Fi nie działa w całym biurze", "network"),
    ("Konto gesperrt", "Ich kann mich nicht anmelden, Passwort falsch eingegeben", "accounts"),
    ("The printer is out of toner", "", "printing"),
    ("Skrzynka pocztowa pełna", "Nie mogę wysłać maila", "email"),
    ("Ransomware on my computer", "all my files are encrypted", "security"),
]


@pytest.mark.parametrize(("subject", "body", "expected"), CATEGORY_CASES)
def test_starter_category_model_routes_obvious_mail(
    starter_store: ModelStore, subject: str, body: str, expected: str
) -> None:
    model = starter_store.load_active("category")
    assert model is not None
    prediction = model.predict(subject, body)
    assert prediction.label == expected, prediction
    assert prediction.top_terms


def test_starter_priority_model_separates_outages_from_questions(starter_store: ModelStore) -> None:
    model = starter_store.load_active("priority")
    assert model is not None
    outage = model.predict("Whole office has no internet", "Nobody can work, everything is down, urgent!")
    question = model.predict("How do I set up my email signature?", "just a question when you have time")
    assert outage.label in {"urgent", "high"}
    assert question.label == "low"


def test_seed_set_covers_every_category_priority_and_language() -> None:
    categories = seed_examples("category")
    priorities = seed_examples("priority")
    assert {ex.label for ex in categories} == set(CATEGORIES)
    assert {ex.label for ex in priorities} == set(PRIORITIES)
    assert len(categories) >= 300
    per_label: dict[str, int] = {}
    for ex in categories:
        per_label[ex.label] = per_label.get(ex.label, 0) + 1
    assert min(per_label.values()) >= 30


def test_starter_models_are_active_and_fitted_on_all_seed_tickets(starter_store: ModelStore) -> None:
    for target in ("category", "priority"):
        version = starter_store.active(target)
        assert version is not None
        assert version.startswith(f"{target}-")
        meta = starter_store.metadata(version)
        assert meta["fit_on"] == "all"
        assert meta["training_data"]["source"] == "seed"
        assert meta["metrics"]["n"] > 50
