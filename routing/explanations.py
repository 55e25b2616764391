"""Which words of a mail explain a decision: feature names read back as the requester's words.

A model's top terms are its features with the largest weight x coefficient in the mail; these
helpers turn a feature name into what a person reads and leave out words that explain nothing.
They need no scikit-learn: the daemon explains every decision, and loading scikit-learn for a
word list cost it 120 MB and seconds at start.
"""

from __future__ import annotations

# scikit-learn's ENGLISH_STOP_WORDS (the Glasgow Information Retrieval Group's list), written out
# so that explaining a decision does not load scikit-learn; tests/routing check the two are equal.
ENGLISH_STOP_WORDS = frozenset(
    """
    a about above across after afterwards again against all almost alone along already also although
    always am among amongst amoungst amount an and another any anyhow anyone anything anyway anywhere
    are around as at back be became because become becomes becoming been before beforehand behind being
    below beside besides between beyond bill both bottom but by call can cannot cant co con could
    couldnt cry de describe detail do done down due during each eg eight either eleven else elsewhere
    empty enough etc even ever every everyone everything everywhere except few fifteen fifty fill find
    fire first five for former formerly forty found four from front full further get give go had has
    hasnt have he hence her here hereafter hereby herein hereupon hers herself him himself his how
    however hundred i ie if in inc indeed interest into is it its itself keep last latter latterly least
    less ltd made many may me meanwhile might mill mine more moreover most mostly move much must my
    myself name namely neither never nevertheless next nine no nobody none noone nor not nothing now
    nowhere of off often on once one only onto or other others otherwise our ours ourselves out over own
    part per perhaps please put rather re same see seem seemed seeming seems serious several she should
    show side since sincere six sixty so some somehow someone something sometime sometimes somewhere
    still such system take ten than that the their them themselves then thence there thereafter thereby
    therefore therein thereupon these they thick thin third this those though three through throughout
    thru thus to together too top toward towards twelve twenty two un under until up upon us very via
    was we well were what whatever when whence whenever where whereafter whereas whereby wherein
    whereupon wherever whether which while whither who whoever whole whom whose why will with within
    without would yet you your yours yourself yourselves
""".split()
)

# Words too common to explain a decision. Only used to choose the terms shown to people (top
# terms); they stay in the features, where TF-IDF already gives them little weight. Polish and
# German are listed as `normalise` leaves them (accents folded, "ß" -> "ss").
_STOP_WORDS_EN_PL_DE = """
    hello hi dear please thanks thank regards best kind team issue problem
    a ale bo by co czy dla do dobry dzien dziekuje i ich jak jest jestem juz lub ma mam mi mnie moj moja
    moje na nie o od oraz po pozdrawiam prosze przez sie tak to tylko w witam z za ze
    aber als am an auch auf aus bei bitte danke das dem den der des die ein eine einen es fur gruss
    grusse guten habe hallo hat ich im in ist kann mein meine mich mir mit nach nicht noch oder schon
    sich sie tag und von was werden wie wir wird zu
"""
_DISPLAY_STOP_WORDS = ENGLISH_STOP_WORDS | frozenset(_STOP_WORDS_EN_PL_DE.split())


def is_explanatory(term: str) -> bool:
    """False for terms made only of stop words, placeholders and single characters."""
    return any(
        len(tok) > 1 and tok not in _DISPLAY_STOP_WORDS and not (tok.startswith("_") and tok.endswith("_"))
        for tok in term.split()
    )


def readable_term(feature: str, document: str) -> str:
    """Map a feature name back to what a person reads: a word, a phrase, or the word a char n-gram is in.

    `document` is the prepared full text of the mail the feature fired in, so a character
    n-gram like " druk" is shown as the requester's own word ("drukarka").
    """
    kind, _, term = feature.partition("__")
    if kind != "char":
        return term
    fragment = term.strip()
    if not fragment:
        return term
    for word in document.split():
        if fragment in word:
            return word
    return fragment
