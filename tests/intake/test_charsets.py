"""Charsets (issue 10): labels read as what the sender's software meant, unlabelled bytes read with
the mail's own charsets or judged by their characters, RFC 2047 words decoded leniently, in
linear time."""

from __future__ import annotations

import base64
import time

import pytest

from intake.charset_guess import best_decoding
from intake.charsets import codec_for, decode_bytes, iso2022jp_decode, mail_hints
from intake.mime_text import decode_text

MB = 1_000_000


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("gb2312", "gb18030"),
        ("GBK", "gb18030"),
        ("Shift_JIS", "cp932"),
        ("x-sjis", "cp932"),
        ("ks_c_5601-1987", "cp949"),
        ("euc-kr", "cp949"),
        ("big5", "big5hkscs"),
        ("iso-8859-1", "cp1252"),
        ('"utf-8"', "utf-8"),
        ("utf-8*en", "utf-8"),
        ("ISO-2022-JP", "iso-2022-jp"),
        ("iso-8859-2", "iso8859-2"),
        ("x-unknown", None),
        ("unicode_escape", None),  # would interpret backslashes in mail text
        ("rot13", None),
        ("no-such-charset", None),
    ],
)
def test_a_label_is_read_as_the_superset_its_users_write(label: str, codec: str | None) -> None:
    assert codec_for(label) == codec


def test_iso_2022_jp_with_the_nec_and_ibm_rows_windows_writes() -> None:
    # ① (row 13), ㈱ (row 13) and 髙 (IBM extension, row 89+) are CP50221, not ISO-2022-JP proper.
    nec = b"\x1b$B-!-j\x1b(B"
    assert iso2022jp_decode(nec) == "①㈱"
    assert iso2022jp_decode(b"\x1b$B|b\x1b(B") == "髙"
    assert iso2022jp_decode(b"\x1b(I12\x1b(B ok") == "ｱｲ ok"  # half-width katakana
    assert iso2022jp_decode(b"\x1b$B%F%9%H\x1b(B") == "テスト"
    assert (
        iso2022jp_decode(b"\x1b$B-!%F\r\n%9%H\x1b(B") == "①テ\r\nスト"
    )  # a line break left in two-byte mode


def test_iso_2022_jp_without_a_label_is_recognised_by_its_escapes() -> None:
    assert decode_bytes("プリンター".encode("iso2022_jp"), None) == "プリンター"
    assert decode_bytes("プリンター".encode("iso2022_jp"), "us-ascii") == "プリンター"


@pytest.mark.parametrize(
    ("text", "label"),
    [("Grüße aus München", "iso-8859-1"), ("Zażółć gęślą jaźń", "windows-1250"), ("Ünïcödé", "us-ascii")],
)
def test_utf8_under_a_legacy_label_is_utf8(text: str, label: str) -> None:
    assert decode_bytes(text.encode(), label) == text


def test_windows_1252_quotes_under_an_iso_8859_1_label() -> None:
    assert decode_bytes(b"\x93quoted\x94 \x96 it\x92s", "iso-8859-1") == "“quoted” – it’s"


def test_one_broken_byte_does_not_change_the_charset() -> None:
    text = "Zgłoszenie awarii: drukarka na piętrze nie działa, proszę o pomoc."
    data = text.encode()
    broken = data[:30] + b"\xff" + data[30:]
    assert decode_bytes(broken, "utf-8") == text
    assert decode_bytes(data[:-2] + "ł".encode()[:1], None).startswith("Zgłoszenie awarii")


def test_the_mails_own_charsets_read_its_undeclared_bytes() -> None:
    hints = mail_hints(["us-ascii", "iso-2022-jp"])  # a Japanese mailer: raw Shift_JIS headers
    assert decode_bytes("田中".encode("cp932"), None, hints) == "田中"
    assert decode_bytes("Μαρία".encode("iso8859_7"), None, mail_hints(["iso-8859-7"])) == "Μαρία"


def test_a_western_hint_does_not_turn_chinese_into_latin_letters() -> None:
    # "张伟" in GBK reads as "ÕÅÎ°" in Windows-1252: no Latin word is made of accented capitals only.
    assert decode_bytes("张伟".encode("gbk"), None, mail_hints(["iso-8859-1"])) == "张伟"


SHORT_TEXTS = [
    ("プリンターが動きません", "cp932"),
    ("【重要】パスワード変更のお願い", "cp932"),
    ("田中 太郎", "cp932"),
    ("会議室の予約について", "euc_jp"),
    ("张伟", "gbk"),
    ("李娜", "gbk"),
    ("打印机无法连接网络", "gbk"),
    ("关于VPN无法登录的问题", "gbk"),
    ("陳大文", "big5"),
    ("網路連線問題", "big5"),
    ("프린터가 작동하지 않습니다", "euc_kr"),
    ("네트워크 장애", "euc_kr"),
    ("Łukasz Żółw", "iso8859_2"),
    ("Zgłoszenie awarii", "cp1250"),
    ("Zażółć gęślą jaźń", "cp1250"),
    ("Jürgen Müller", "cp1252"),
    ("Γιώργος Παπαδόπουλος", "iso8859_7"),
    ("Πρόβλημα", "iso8859_7"),
    ("Ο εκτυπωτής δεν λειτουργεί", "iso8859_7"),
    ("Принтер не работает", "cp1251"),
    ("Иван Петров", "koi8_r"),
    ("Dvořák Jiří", "cp1250"),
]


@pytest.mark.parametrize(("text", "charset"), SHORT_TEXTS, ids=[f"{c}-{t}" for t, c in SHORT_TEXTS])
def test_a_few_undeclared_bytes_are_read_in_the_charset_they_were_written_in(text: str, charset: str) -> None:
    # charset-normalizer reads "张伟" as Big5, "Γιώργος" as Cyrillic: a name is too short for statistics.
    assert best_decoding(text.encode(charset)) == text


def b64(text: str, charset: str = "utf-8") -> str:
    return base64.b64encode(text.encode(charset)).decode()


@pytest.mark.parametrize(
    ("header", "text"),
    [
        # base64 chunks each padded, then concatenated: the stdlib stops at the first padding
        ("=?UTF-8?B?" + b64("Zgłosz") + b64("enie awarii") + "?=", "Zgłoszenie awarii"),
        ("=?UTF-8?B?" + b64("日本語") + "==?=", "日本語"),  # stray padding
        ("=?UTF-8?B?" + b64("日本語")[:-1] + "=?=", "日本"),  # a character cut off
        ("=?utf-8?Q?Zg=C5=82oszenie_awarii=?=", "Zgłoszenie awarii"),  # a stray soft break
        ("=?utf-8?q?Zg=C5?= =?utf-8?q?=82oszenie?=", "Zgłoszenie"),  # a character split over two words
        ("=?utf-8?B?" + b64("日本語") + "?=\t=?utf-8?B?" + b64("テスト") + "?=", "日本語テスト"),
        ("Re: =?utf-8?Q?W=C3=B6rld?= again", "Re: Wörld again"),
        ("=?utf-8*pl?Q?Zg=C5=82oszenie?=", "Zgłoszenie"),  # RFC 2231 language tag
        ("=?gb2312?B?" + b64("朱镕基", "gbk") + "?=", "朱镕基"),  # GBK under a GB2312 label
        ("=?shift_jis?B?" + b64("①会議室", "cp932") + "?=", "①会議室"),
        ("=?iso-2022-jp?B?" + base64.b64encode(b"\x1b$B-!\x1b(B").decode() + "?=", "①"),
        ("=?ks_c_5601-1987?B?" + b64("똠방", "cp949") + "?=", "똠방"),
        ("=?iso-8859-1?Q?Gr=C3=BC=C3=9Fe?=", "Grüße"),  # UTF-8 under a Latin-1 label
        ("=?x-unknown?B?" + b64("Zgłoszenie", "cp1250") + "?=", "Zgłoszenie"),
        ("=?UTF-8?B?" + b64("日本語テスト"), "日本語テスト"),  # the header cut before "?="
        ("=?=?=? not a word", "=?=?=? not a word"),
    ],
)
def test_encoded_words_as_mail_clients_decode_them(header: str, text: str) -> None:
    assert decode_text(header) == text


def test_raw_8bit_and_unencoded_iso_2022_jp_headers() -> None:
    raw_sjis = "プリンター故障".encode("cp932").decode("ascii", "surrogateescape")
    assert decode_text(raw_sjis, hints=("cp932",)) == "プリンター故障"
    assert decode_text("\x1b$B%W%j%s%?!<\x1b(B") == "プリンター"


HOSTILE_HEADERS = {
    "openings": "=?" * (MB // 2),
    "openings with a charset": "=?utf-8?" * (MB // 8),
    "words without an end": "=?utf-8?B?" * (MB // 10),
    "one word of a megabyte": "=?utf-8?B?" + "QUFB" * (MB // 4) + "?=",
    "question marks": "=?a?q?" + "?" * MB,
    "adjacent words": "=?utf-8?q?a?=" * (MB // 13),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(HOSTILE_HEADERS))
def test_header_decoding_is_linear(name: str) -> None:
    started = time.perf_counter()
    decode_text(HOSTILE_HEADERS[name], limit=None)
    assert time.perf_counter() - started < 2.0


@pytest.mark.timeout(120)
def test_guessing_a_large_undeclared_text_reads_a_bounded_sample() -> None:
    data = ("Zażółć gęślą jaźń. " * (MB // 25)).encode("cp1250")
    started = time.perf_counter()
    assert best_decoding(data) == data.decode("cp1250")
    assert time.perf_counter() - started < 3.0


def test_a_sign_beside_a_number_is_not_read_as_a_letter() -> None:
    # One byte of Windows-1252 in an English mail: "£130", not the Polish "Ł130".
    assert (
        best_decoding("The £130million Airbus, 20° outside".encode("cp1252"))
        == "The £130million Airbus, 20° outside"
    )


def test_a_cjk_text_with_a_broken_sequence_is_still_read_in_its_charset() -> None:
    text = "您還在用信用卡嗎？零利率代償時代來臨囉，目前循環總額乘以信用卡利率。"
    data = text.encode("big5")
    broken = data[:20] + b"\xff" + data[20:]  # one byte no Big5 sequence holds
    assert best_decoding(broken) == text
