"""Bytes of a mail to text, whatever charset they were written in and whatever charset they claim.

Mail lies about its charset in a few well-known ways, and each has a well-known reading:

* a label names a subset of what the sender's software wrote: `gb2312` for GBK, `shift_jis`
  for Windows-31J with its NEC and IBM characters (①, ㈱), `euc-kr` for the Korean Windows
  code page, `iso-8859-1` for Windows-1252. The superset reads the same text and the rest too,
  as every mail client does (the WHATWG Encoding Standard lists the same replacements);
* `iso-2022-jp` text written by Windows mailers carries the same NEC and IBM characters, which
  no ISO-2022-JP codec knows, and old Japanese mailers send it unlabelled or as `us-ascii`:
  its escape sequences mark it, and it is read through Windows-31J (`iso2022jp_decode`);
* UTF-8 under a single-byte label: the bytes of non-ASCII text in any legacy charset are
  almost never valid UTF-8, so valid UTF-8 with non-ASCII in it is UTF-8 (RFC 6532 mail is);
* no label, a wrong one or an unknown one: the charsets the same mail declares elsewhere (its
  text parts, its other encoded words) come first, since one mailer wrote them all; then a
  guess. charset-normalizer guesses well from a body's worth of text, but a subject or a name
  is a few bytes, and there it picks look-alikes (Big5 for GBK, Greek as Cyrillic): short
  text is judged by `intake.charset_guess`, which knows which characters real text is made of.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Sequence

import charset_normalizer

from intake.charset_guess import CANDIDATES, best_codec, plausibility

ESC = 0x1B
# Text at least this long is left to charset-normalizer's statistics (if its reading is plausible).
LONG_TEXT_BYTES = 400
# charset-normalizer reads a bounded sample of a large body; what it names decodes the whole.
DETECTION_SAMPLE = 256 * 1024
PLAUSIBILITY_SAMPLE = 16 * 1024  # characters of a hinted reading judged
PLAUSIBLE = 0.5  # the score (intake.charset_guess) a hinted reading needs; real text scores 1 to 3
# A text of that charset with a byte or two broken: at least this many well-formed non-ASCII
# characters per broken one (legacy bytes read as UTF-8 give a handful of well-formed ones at most).
MOSTLY = 2

# Labels mail carries that Python does not know by that name.
_ALIASES = {
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "windows-932": "cp932",
    "euc-jp-ms": "euc_jp",
    "cp51932": "euc_jp",
    "gb_2312-80": "gb2312",
    "x-euc-cn": "gb2312",
    "windows-936": "gbk",
    "windows-949": "cp949",
    "ks_c_5601-1989": "cp949",
    "cseuckr": "cp949",
    "windows-950": "big5",
    "chinesebig5": "big5",
    "x-johab": "johab",
    "x-ms-cp932": "cp932",
    "csshiftjis": "cp932",
    "x-gbk": "gbk",
    "csgb2312": "gb2312",
    "x-euc-jp": "euc_jp",
    "cseucpkdfmtjapanese": "euc_jp",
    "x-x-big5": "big5",
    "cn-big5": "big5",
    "csbig5": "big5",
    "x-windows-949": "cp949",
    "unicode-1-1-utf-8": "utf-8",
    "x-unicode20utf8": "utf-8",
}
# Codecs of labels -> the codec that reads what the label's users write (a superset of it).
_SUPERSETS = {
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "big5": "big5hkscs",
    "cp950": "big5hkscs",
}
ISO2022JP = "iso-2022-jp"  # read by iso2022jp_decode, not by a codec of its own
_ISO2022JP_LABELS = frozenset(("cp50220", "cp50221", "cp50222", "x-cp50220", "x-cp50221", "csiso2022jp"))
_ISO2022JP_CODECS = frozenset(
    ("iso2022_jp", "iso2022_jp_1", "iso2022_jp_2", "iso2022_jp_3", "iso2022_jp_ext", "iso2022_jp_2004")
)
# Labels that say "we do not know": nothing to try before guessing.
_UNKNOWN = frozenset(("unknown-8bit", "x-unknown", "unknown", "x-user-defined", "default", "8bit", "none"))
# Codecs a label may not select: they do not read text, they interpret it (escapes, IDNA).
_NOT_CHARSETS = frozenset(("unicode_escape", "raw_unicode_escape", "idna", "punycode", "undefined", "mbcs"))
_MULTI_BYTE = ("utf", "iso2022", "euc", "shift_jis", "gb", "big5", "cp932", "cp949", "cp950", "hz", "johab")


def codec_for(label: str | None) -> str | None:
    """The codec that reads text labelled `label` (a MIME charset name), or None when unknown."""
    codec = label_codec(label)
    return None if codec is None else _SUPERSETS.get(codec, codec)


def label_codec(label: str | None) -> str | None:
    """The codec `label` names itself, without the superset mail means by it."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    name = name.partition("*")[0]  # RFC 2231 section 5: charset*language
    if not name or len(name) > 40 or not name.isascii() or name in _UNKNOWN:
        return None
    if name in _ISO2022JP_LABELS:
        return ISO2022JP
    try:
        info = codecs.lookup(_ALIASES.get(name, name))
    except (LookupError, ValueError):
        return None
    if info.name in _ISO2022JP_CODECS:
        return ISO2022JP
    if info.name.replace("-", "_") in _NOT_CHARSETS or not getattr(info, "_is_text_encoding", True):
        return None
    return str(info.name)


def single_byte(codec: str) -> bool:
    return not codec.startswith(_MULTI_BYTE)


def looks_iso2022jp(data: bytes) -> bool:
    """Whether 7-bit data carries ISO-2022-JP's escapes (RFC 1468): ESC $ B, ESC $ @, ESC ( I."""
    return b"\x1b$B" in data or b"\x1b$@" in data or b"\x1b(I" in data or b"\x1b$(D" in data


def decode_bytes(data: bytes, declared: str | None, hints: Sequence[str] = ()) -> str:
    """`data` as text: the declared charset (read as its superset) when it holds, else the same
    mail's other charsets (`hints`, codec names), else a guess. Never raises."""
    codec = codec_for(declared)
    if data.isascii():
        if ESC in data:
            if codec in (None, "ascii", "utf-8", ISO2022JP) and looks_iso2022jp(data):
                return iso2022jp_decode(data)
            if codec == ISO2022JP:
                return iso2022jp_decode(data)
            if b"\x1b$)C" in data:
                return _try(data, "iso2022_kr") or data.decode("ascii")
        if codec and codec not in ("ascii", "utf-8", ISO2022JP):
            return _try(data, codec) or data.decode("ascii")  # UTF-7, UTF-16: ASCII bytes, not ASCII text
        return data.decode("ascii")
    if codec == ISO2022JP:
        codec = None  # 8-bit bytes are not ISO-2022-JP, whatever the label says
    if codec is not None and codec != "ascii":
        if single_byte(codec) and _valid_utf8(data):
            return data.decode("utf-8")  # UTF-8 sent under a legacy label
        for candidate in dict.fromkeys((codec, label_codec(declared))):
            text = _try(data, candidate) if candidate else None
            if text is not None:
                return text
    text = _utf8(data)
    if text is not None:
        return text
    # A byte or two broken in otherwise good text (a line cut by a gateway) keeps its charset.
    for candidate in (codec, "utf-8"):
        if candidate and candidate != "ascii" and not single_byte(candidate):
            text = _mostly(data, candidate)
            if text is not None:
                return text
    return guess(data, hints)


def guess(data: bytes, hints: Sequence[str] = ()) -> str:
    """Undeclared (or wrongly declared) 8-bit text: the mail's own charsets first, then a guess."""
    codec = guess_codec(data, hints)
    if codec is None:
        return data.decode("cp1252", "replace")
    text = _try(data, codec)
    return text if text is not None else data.decode(codec, "replace").replace("\ufffd", "")


def guess_codec(data: bytes, hints: Sequence[str] = ()) -> str | None:
    """The charset undeclared 8-bit `data` was written in: a hint whose reading looks like text,
    else charset-normalizer's answer for a body's worth of text when plausible, else the
    reading `intake.charset_guess` finds most plausible."""
    for codec in hints:
        if codec in (ISO2022JP, "ascii", "utf-8"):
            continue
        text = _try(data, codec)
        if text is not None and plausible(text, codec):
            return codec
    sample = data[:DETECTION_SAMPLE]
    if len(sample) >= LONG_TEXT_BYTES:  # a body's worth: charset-normalizer's statistics
        detected = _normalizer_guess(sample)
        if detected is not None and detected != ISO2022JP:
            text = _try(data, detected)
            if text is not None and plausible(text, detected):
                return detected
    return best_codec(data)


def mail_hints(labels: Iterable[str | None]) -> tuple[str, ...]:
    """The codecs a mail declares, in order, once each: what to read its undeclared bytes with."""
    seen: dict[str, None] = {}
    for label in labels:
        codec = codec_for(label)
        if codec and codec not in ("ascii", "utf-8", ISO2022JP):
            seen.setdefault(codec, None)
        elif codec == ISO2022JP:
            # Japanese mailers that write ISO-2022-JP bodies write raw Shift_JIS or EUC-JP headers.
            seen.setdefault("cp932", None)
    return tuple(seen)


def _try(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (LookupError, UnicodeError, ValueError):
        return None


def _valid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _utf8(data: bytes) -> str | None:
    """UTF-8, also when the last character was cut off (a truncated encoded word or line)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data" and exc.start >= len(data) - 3 and exc.start > 0:
            head = data[: exc.start]
            if not head.isascii():
                return head.decode("utf-8")
        return None


def _mostly(data: bytes, codec: str) -> str | None:
    """`data` in `codec` when few of its non-ASCII characters fail to decode; the failures dropped."""
    try:
        text = data.decode(codec, "replace")
    except (LookupError, ValueError):
        return None
    bad = text.count("\ufffd")
    decoded = len(text) - len(text.encode("ascii", "ignore")) - bad
    if decoded >= 2 and bad * MOSTLY <= decoded:
        return text.replace("\ufffd", "")
    return None


def plausible(text: str, codec: str) -> bool:
    """Whether a reading of undeclared bytes with a charset the mail declares elsewhere looks like
    text: a Western hint must not turn GBK bytes into "ÕÅÎ°"."""
    family = family_of(codec)
    if family is None:
        return True
    score = plausibility(text[:PLAUSIBILITY_SAMPLE], family)
    return score is not None and score >= PLAUSIBLE


_FAMILIES = {
    "greek": ("cp1253", "iso8859-7", "mac-greek", "cp737"),
    "cyrillic": ("cp1251", "koi8-r", "koi8-u", "iso8859-5", "cp866", "mac-cyrillic"),
    "latin": (
        "cp1250 cp1252 cp1254 cp1257 cp1258 iso8859-1 iso8859-2 iso8859-3 iso8859-4 iso8859-9 iso8859-10 "
        "iso8859-13 iso8859-14 iso8859-15 iso8859-16 mac-roman mac-latin2 cp850 cp852"
    ).split(),
}
_FAMILY_OF = {codec: family for family, members in _FAMILIES.items() for codec in members}


def family_of(codec: str) -> str | None:
    return CANDIDATES.get(codec) or _FAMILY_OF.get(codec)


# What charset-normalizer chooses among for a long text: the charsets undeclared 8-bit mail is
# written in (letting it consider every codec it knows picks look-alikes, cp1257 for Polish).
NORMALIZER_CANDIDATES = (
    "cp1250",
    "iso8859_2",
    "cp1252",
    "iso8859_15",
    "cp1251",
    "koi8_r",
    "iso8859_7",
    "shift_jis",
    "euc_jp",
    "iso2022_jp",
    "gb18030",
    "big5",
    "euc_kr",
)


def _normalizer_guess(data: bytes) -> str | None:
    best = charset_normalizer.from_bytes(data, cp_isolation=list(NORMALIZER_CANDIDATES)).best()
    return None if best is None else codec_for(str(best.encoding))


# -- ISO-2022-JP (RFC 1468), as Windows mailers write it ---------------------------------------

_JIS_SETS = {
    b"\x1b(B": "ascii",
    b"\x1b(J": "ascii",  # JIS X 0201 Roman: ASCII but for the yen sign and overline
    b"\x1b(I": "kana",  # JIS X 0201 half-width katakana
    b"\x1b$@": "jis0208",
    b"\x1b$B": "jis0208",
    b"\x1b&@\x1b$B": "jis0208",
    b"\x1b$(D": "jis0212",
}


def iso2022jp_decode(data: bytes) -> str:
    """ISO-2022-JP read as Windows mailers mean it (Microsoft's CP50221): JIS X 0208 with the NEC
    and IBM extension rows, half-width katakana, JIS X 0212. Linear; never raises."""
    for codec in ("iso2022_jp", "iso2022_jp_2", "iso2022_jp_ext"):
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            pass
    out: list[str] = []
    mode = "ascii"
    i = 0
    n = len(data)
    while i < n:
        esc = data.find(b"\x1b", i)
        end = n if esc < 0 else esc
        if end > i:
            out.append(_jis_run(data[i:end], mode))
        if esc < 0:
            break
        for sequence, charset in _JIS_SETS.items():
            if data.startswith(sequence, esc):
                mode = charset
                i = esc + len(sequence)
                break
        else:
            i = esc + 1  # an escape we do not know: drop the ESC, keep the rest as it is
    return "".join(out)


def _jis_run(run: bytes, mode: str) -> str:
    if mode == "ascii":
        return run.decode("ascii", "replace")
    if mode == "kana":
        return bytes(b + 0x80 if 0x21 <= b <= 0x5F else b for b in run).decode("cp932", "replace")
    if mode == "jis0212":
        euc = bytearray()
        for k in range(0, len(run) - 1, 2):
            euc += bytes((0x8F, run[k] | 0x80, run[k + 1] | 0x80))
        return euc.decode("euc_jp", "replace")
    sjis = bytearray()
    k = 0
    while k < len(run):
        j1 = run[k]
        j2 = run[k + 1] if k + 1 < len(run) else 0
        if not (0x21 <= j1 <= 0x7E and 0x21 <= j2 <= 0x7E):
            sjis.append(j1 if j1 < 0x21 else 0x3F)  # a line break the mailer left in two-byte mode
            k += 1
            continue
        s1 = ((j1 + 1) >> 1) + (0x70 if j1 <= 0x5E else 0xB0)
        s2 = j2 + (0x1F + (j2 >= 0x60) if j1 & 1 else 0x7E)
        sjis += bytes((s1, s2))
        k += 2
    return sjis.decode("cp932", "replace")
