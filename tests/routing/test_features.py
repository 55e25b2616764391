"""The feature function: cleaning, determinism, and coverage of English, Polish and German."""

from __future__ import annotations

import numpy as np

from routing.explanations import ENGLISH_STOP_WORDS, is_explanatory, readable_term
from routing.features import FeatureSettings, MailVectorizer, build_features
from routing.text_cleaning import (
    EMAIL_TOKEN,
    ID_TOKEN,
    NUMBER_TOKEN,
    URL_TOKEN,
    normalise,
    prepare,
    prepare_rows,
)

MAILS = [
    ("Drukarka nie drukuje", "Drukarka w pokoju 12 nie drukuje od rana."),
    ("VPN Verbindung bricht ständig ab", "Die VPN-Verbindung bricht im Homeoffice ständig ab."),
    ("I forgot my password", "Please reset my password, I cannot log in."),
]


def test_normalise_folds_case_accents_and_language_specific_letters() -> None:
    assert normalise("Hasło WYGASŁO, Straße, Größe, für") == "haslo wygaslo strasse grosse fur"


def test_normalise_replaces_noise_with_placeholders() -> None:
    text = normalise(
        "Mail jan.kowalski@example.pl see https://intranet.example.com/x?y=1 "
        "ticket 1550391 device 3f2a9c1e-77b0 [cid:image001.png@01D2A3B4.5C6D7E80]"
    )
    assert EMAIL_TOKEN in text
    assert URL_TOKEN in text
    assert NUMBER_TOKEN in text
    assert ID_TOKEN in text
    assert "kowalski" not in text
    assert "intranet" not in text
    assert "image001" not in text


def test_normalise_drops_quoted_lines_and_repairs_mojibake() -> None:
    assert normalise("Drucker kaputt\n> old quoted text\n  >> more") == "drucker kaputt"
    assert normalise("bitte passwort fÃ¼r mich zurÃ¼cksetzen") == "bitte passwort fur mich zurucksetzen"


def test_prepare_drops_a_body_that_repeats_the_subject() -> None:
    assert prepare("Printer offline", "printer offline") == ("printer offline", "")
    assert prepare_rows([("VPN", "")]) == [("vpn", "", "vpn")]


def test_features_are_deterministic() -> None:
    a = build_features().fit_transform(MAILS)
    b = build_features().fit_transform(MAILS)
    assert (a != b).nnz == 0
    assert list(build_features().fit(MAILS).get_feature_names_out()) == list(
        build_features().fit(MAILS).get_feature_names_out()
    )


def test_char_ngrams_link_inflected_polish_and_german_compound_forms() -> None:
    vectorizer = build_features(FeatureSettings()).fit(
        [("drukarka", ""), ("Netzwerkdrucker", ""), ("hasło", ""), ("Passwörter", "")]
    )
    x = vectorizer.transform([("drukarki", ""), ("Drucker", ""), ("hasła", ""), ("Passwort", "")])
    names = vectorizer.get_feature_names_out()
    # An unseen inflection or compound part still shares character n-grams with the training form.
    for row in range(4):
        assert x[row].nnz > 0
    shared = {str(names[j]) for j in x[1].indices}
    assert "char__druck" in shared or "char__ruck" in shared


def test_every_language_produces_features_for_its_mail() -> None:
    vectorizer = build_features().fit(MAILS)
    x = vectorizer.transform(MAILS)
    assert all(x[i].nnz > 10 for i in range(len(MAILS)))
    assert np.isclose(x[0].max(), x[0].max())  # finite values


def test_subject_has_its_own_weighted_features() -> None:
    light = build_features(FeatureSettings(subject_weight=0.5)).fit(MAILS)
    heavy = build_features(FeatureSettings(subject_weight=2.0)).fit(MAILS)
    names = list(light.get_feature_names_out())
    col = names.index("subject__drukarka")
    assert heavy.transform(MAILS[:1])[0, col] == 4 * light.transform(MAILS[:1])[0, col]


def test_vectorizer_state_round_trips_through_getstate() -> None:
    fitted = MailVectorizer().fit(MAILS)
    copy = MailVectorizer.__new__(MailVectorizer)
    copy.__setstate__(fitted.__getstate__())
    assert (copy.transform(MAILS) != fitted.transform(MAILS)).nnz == 0


def test_readable_term_shows_the_word_a_char_ngram_came_from() -> None:
    assert readable_term("char__ druk", "moja drukarka nie dziala") == "drukarka"
    assert readable_term("word__reset password", "please reset password") == "reset password"
    assert not is_explanatory("the")
    assert not is_explanatory("nie sie")
    assert is_explanatory("drukarka")


def test_equal_vectorizers_share_one_transform_and_different_ones_do_not() -> None:
    from routing.features import MailVectorizer
    from routing.text_cleaning import prepare_rows

    texts = [("Printer jam", "the printer on floor 3 jams"), ("VPN down", "cannot connect to the vpn")] * 3
    a = MailVectorizer().fit(texts)
    b = MailVectorizer().fit(texts)
    c = MailVectorizer().fit([*texts, ("Password", "forgot my password")])
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()
    rows = prepare_rows([("Printer jam", "it jams again")])
    first = a.transform_prepared(rows)
    assert b.transform_prepared(rows) is first  # the second model reuses the first one's work
    assert c.transform_prepared(rows) is not first
    assert "_fingerprint" not in a.__getstate__()


def test_the_written_out_stop_words_are_scikit_learns() -> None:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS as SKLEARN_STOP_WORDS

    assert frozenset(SKLEARN_STOP_WORDS) == ENGLISH_STOP_WORDS
