"""Which charset a few undeclared 8-bit bytes were written in: a subject, a name, a short body.

Statistical detectors need a body's worth of text; a subject or a display name is a few
bytes, and many charsets decode it without error: GBK bytes read as Big5, EUC-KR as GB2312,
Greek as Cyrillic, Polish as Western. What tells them apart is which characters come out.
Real text is made of its script's common characters (GB2312 level 1, JIS level 1, the Big5
frequent range, the KS X 1001 Hangul, letters of one script), of kana in Japanese and never in
Chinese, of non-ASCII letters inside words of Latin text, never of symbols between letters, of
controls, of mixed scripts. Each candidate reading is scored on that, per non-ASCII byte; the
most frequent characters of each language (charset-normalizer's own tables) count extra.

Linear in the text; a large text is judged on a sample of its non-ASCII lines.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from charset_normalizer.constant import FREQUENCIES

# (codec, family), in the order that breaks a tie: the charsets undeclared mail is written in.
CANDIDATES: dict[str, str] = {
    "cp932": "ja",
    "gb18030": "zh-hans",
    "big5hkscs": "zh-hant",
    "cp949": "ko",
    "euc_jp": "ja",
    "cp1250": "latin",
    "iso8859-2": "latin",
    "cp1252": "latin",
    "cp1251": "cyrillic",
    "koi8-r": "cyrillic",
    "iso8859-7": "greek",
}
# EUC-JP, rarely met undeclared today, reads Chinese GB2312 bytes as common kanji: without a kana
# (which Japanese text has, and Chinese text never) it loses a near tie.
EUC_JP_WITHOUT_KANA = 0.3
LOOSE_RATIO = 20  # well-formed characters per broken sequence a CJK reading may have
SAMPLE_BYTES = 16 * 1024  # of lines with non-ASCII bytes in them

_CJK = frozenset(("ja", "zh-hans", "zh-hant", "ko"))
_FREQUENT = {
    "ja": frozenset("".join(FREQUENCIES["Japanese"])),
    "zh-hans": frozenset("".join(FREQUENCIES["Chinese"])),
    "zh-hant": frozenset(),
    "ko": frozenset("".join(FREQUENCIES["Korean"])),
    "latin": frozenset(
        ch
        for language in ("Polish", "German", "French", "Spanish", "Czech", "Portuguese", "Italian")
        for ch in FREQUENCIES[language]
        if not ch.isascii()
    ),
    "cyrillic": frozenset(
        "".join(FREQUENCIES["Russian"] + FREQUENCIES["Ukrainian"] + FREQUENCIES["Bulgarian"])
    ),
    "greek": frozenset("".join(FREQUENCIES["Greek"])),
}
# Typographic marks that stand between letters in real text (an apostrophe, a middle dot).
_INWORD_MARKS = frozenset("’‘·ʼ")


def best_decoding(data: bytes) -> str | None:
    """The most plausible reading of `data` among CANDIDATES, or None when none decodes."""
    codec = best_codec(data)
    if codec is None:
        return None
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        return data.decode(codec, "replace").replace("\ufffd", "")


def best_codec(data: bytes) -> str | None:
    """The candidate charset whose reading of `data` is most plausible, or None when none decodes."""
    sample = _sample(data)
    cut = len(sample) < len(data)
    best: tuple[float, str] | None = None
    for codec, family in CANDIDATES.items():
        penalty = 0.0
        text = _strict(sample, codec, cut)
        if text is None and family in _CJK:
            text, penalty = _loose(sample, codec)
        if text is None:
            continue
        score = plausibility(text, family)
        if score is None:
            continue
        score -= penalty
        if codec == "euc_jp" and not any("\u3040" <= ch <= "\u30ff" for ch in text):
            score -= EUC_JP_WITHOUT_KANA
        if best is None or score > best[0]:
            best = (score, codec)
    return None if best is None else best[1]


def _loose(data: bytes, codec: str) -> tuple[str | None, float]:
    """A CJK text with a few broken sequences (a gateway cut a line, a mailer wrote a character its
    charset lacks): read without them, and scored down by their share."""
    text = data.decode(codec, "replace")
    bad = text.count("\ufffd")
    good = len(text) - len(text.encode("ascii", "ignore")) - bad
    if good < LOOSE_RATIO * bad or good < 2:
        return None, 0.0
    return text.replace("\ufffd", ""), 4.0 * bad / good


def plausibility(text: str, family: str) -> float | None:
    """How much `text` looks like real text of `family`, per non-ASCII byte (about), or None when
    it holds what no text holds (controls, unassigned or private code points). Linear."""
    total = 0.0
    weight = 0
    index = 0
    length = len(text)
    while index < length:
        ch = text[index]
        if ch.isalpha():
            end = index + 1
            while end < length and text[end].isalpha():
                end += 1
            word = text[index:end]
            if not word.isascii():
                before = text[index - 2 : index] if index >= 2 else " " + text[:index]
                after = text[end] if end < length else " "
                scored = _word(word, family, before, after)
                if scored is None:
                    return None
                total += scored[0]
                weight += scored[1]
            index = end
            continue
        if ch >= "\x80":
            cls = _class(ch)
            if cls == "bad":
                return None
            previous = text[index - 1] if index else " "
            following = text[index + 1] if index + 1 < length else " "
            total += _mark(ch, cls, family, previous, following)
            weight += 2 if family in _CJK and cls == "cjk-punct" else 1
        index += 1
    return total / weight if weight else 0.0


def _mark(ch: str, cls: str, family: str, previous: str, following: str) -> float:
    """A non-letter: CJK punctuation in CJK text, symbols and digits between words, not inside
    them; a currency sign or a unit beside a number ("£130", "20°")."""
    if cls in ("cjk-punct", "halfwidth"):
        return 3.0 if family in _CJK and cls == "cjk-punct" else -4.0
    if family in _CJK:
        return -1.0  # the symbols of the CJK character sets: box drawing, arrows, circled numbers
    if previous.isdigit() or following.isdigit():
        return 1.0
    between = previous.isalpha() and following.isalpha()
    return -3.0 if between and ch not in _INWORD_MARKS else 0.0


def _word(word: str, family: str, before: str, after: str) -> tuple[float, int] | None:
    """(score, weight) of the non-ASCII letters of one word (a run of letters)."""
    if family in _CJK:
        return _cjk_word(word, family, before)
    if len(word) == 1 and (before[-1:].isdigit() or after.isdigit()):
        return 0.0, 1  # one letter glued to a number ("Ł130million") is a sign misread as a letter
    total = 0.0
    weight = 0
    has_ascii = not all(ch >= "\x80" for ch in word)
    vowels = _VOWELS.get(family)
    previous = ""
    for position, ch in enumerate(word):
        if ch >= "\x80":
            cls = _class(ch)
            if cls == "bad":
                return None
            weight += 1
            if cls != "letter" or _script(ch) != family:
                total -= 4.0
            else:
                score = 1.0 + (0.5 if ch.lower() in _FREQUENT[family] else 0.0)
                if family == "latin" and not has_ascii and len(word) > 1:
                    score = 0.0  # Latin words are mostly ASCII letters: "ŐĹÎ" is something else read as Latin
                elif family != "latin" and has_ascii:
                    score = -3.0  # Greek or Cyrillic glued to Latin letters: "Јukasz", "Grόίe"
                if ch.isupper() and previous.isalpha() and previous.islower():
                    score -= 3.0  # "PrzykĹ‚ad", "хВЮМ": an upper-case letter after a lower-case one
                total += score + _order(ch, family, previous, position, len(word))
        previous = ch
    if vowels is not None and len(word) >= 3 and not any(ch.lower() in vowels for ch in word):
        total -= len(word)  # no vowel in a word of Greek or Cyrillic letters: "Рсьвлзмб"
    return total, weight


_VOWELS = {
    "cyrillic": frozenset("аеёиоуыэюяіїєaeiou"),
    "greek": frozenset("αεηιουωάέήίόύώϊϋΐΰ"),
}
_RU_VOWELS = frozenset("аеёиоуыэюяіїє")


def _order(ch: str, family: str, previous: str, position: int, length: int) -> float:
    """Letters in an order their language never has them in."""
    lower = ch.lower()
    if family == "greek" and ch == "ς" and position < length - 1:
        return -3.0  # final sigma inside a word
    if family == "cyrillic":
        after_vowel = previous.lower() in _RU_VOWELS
        if lower == "й" and position > 0 and not after_vowel:
            return -2.0  # "Гйюсгпт": й follows vowels
        if lower in "ьъ" and (position == 0 or after_vowel):
            return -2.0
        if lower == "ы" and position == 0:
            return -2.0
    return 0.0


def _cjk_word(word: str, family: str, before: str) -> tuple[float, int] | None:
    total = 0.0
    weight = 0
    last = len(word) - 1
    for position, ch in enumerate(word):
        if ch < "\x80":
            continue
        cls = _class(ch)
        if cls == "bad":
            return None
        frequent = 1.0 if ch in _FREQUENT[family] else 0.0
        if cls == "kana":
            score = 4.0 + frequent if family == "ja" else -4.0
        elif cls == "hangul":
            score = (4.0 if _in(ch, "euc_kr") else -2.0) + frequent if family == "ko" else -4.0
        elif cls == "han":
            score = _han(ch, family) + frequent
        elif cls == "halfwidth":
            score = -0.5
        else:
            score = -2.0  # Latin, Greek and Cyrillic letters of the CJK character sets
        glued_before = position > 0 and _ascii_letter(word[position - 1])
        glued_after = position < last and _ascii_letter(word[position + 1])
        if glued_before and glued_after:
            score -= 4.0  # one CJK character inside a Latin word: "Zg쿽szenie", "ㄆkasz"
        elif glued_before or glued_after:
            score -= 0.5
        if (
            family == "zh-hans"
            and position == 0
            and before[-1:] == " "
            and _class(before[:1] or " ") == "han"
        ):
            score -= 1.5  # Chinese puts no spaces between words; Korean does
        total += score
        weight += 1 if cls == "halfwidth" else 2
    return total, weight


def _ascii_letter(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


@lru_cache(maxsize=8192)
def _class(ch: str) -> str:
    code = ord(ch)
    category = unicodedata.category(ch)
    if category in ("Cc", "Co", "Cn", "Cs") or ch == "\ufffd":
        return "bad"
    if 0x3040 <= code <= 0x30FF:
        return "kana"
    if 0xFF61 <= code <= 0xFF9F:
        return "halfwidth"
    if 0xAC00 <= code <= 0xD7A3:
        return "hangul"
    if 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF:
        return "han"
    if 0x3000 <= code <= 0x303F or 0xFF01 <= code <= 0xFF60 or 0xFFE0 <= code <= 0xFFEF:
        return "cjk-punct"
    if category.startswith("L"):
        return "letter"
    return "other"


@lru_cache(maxsize=4096)
def _script(ch: str) -> str:
    code = ord(ch)
    if 0x0370 <= code <= 0x03FF:
        return "greek"
    if 0x0400 <= code <= 0x052F:
        return "cyrillic"
    if code <= 0x024F or 0x1E00 <= code <= 0x1EFF:
        return "latin"
    return "other"


@lru_cache(maxsize=16384)
def _han(ch: str, family: str) -> float:
    """A Han character's commonness in `family`'s charset: its level-1 set, the rest, or neither."""
    if family == "ja":
        return _level(ch, "cp932", 0x889F, 0x9872, 0x989F, 0xEAA4)
    if family == "zh-hans":
        return _level(ch, "gb2312", 0xB0A1, 0xD7F9, 0xD8A1, 0xF7FE)
    if family == "zh-hant":
        return _level(ch, "big5", 0xA440, 0xC67E, 0xC940, 0xF9D5)
    return 1.0 if _in(ch, "euc_kr") else -2.0  # hanja in a Korean text: rare, never outside KS X 1001


def _level(ch: str, codec: str, first: int, last: int, second: int, end: int) -> float:
    try:
        encoded = ch.encode(codec)
    except UnicodeEncodeError:
        return -2.0
    code = int.from_bytes(encoded, "big")
    if first <= code <= last:
        return 4.0
    if second <= code <= end:
        return 2.0
    return -2.0


def _in(ch: str, codec: str) -> bool:
    try:
        ch.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


def _sample(data: bytes) -> bytes:
    """Lines that carry non-ASCII bytes, up to SAMPLE_BYTES: enough to judge, bounded in cost."""
    if len(data) <= SAMPLE_BYTES:
        return data
    kept: list[bytes] = []
    size = 0
    for line in data.split(b"\n"):
        if line.isascii():
            continue
        kept.append(line)
        size += len(line) + 1
        if size >= SAMPLE_BYTES:
            break
    return b"\n".join(kept)[:SAMPLE_BYTES]


def _strict(data: bytes, codec: str, cut: bool) -> str | None:
    """`data` decoded strictly, forgiving only a character the sample cut off at its end."""
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        if not cut or exc.start < len(data) - 3:
            return None
        try:
            return data[: exc.start].decode(codec)
        except UnicodeDecodeError:
            return None
    except LookupError:
        return None
