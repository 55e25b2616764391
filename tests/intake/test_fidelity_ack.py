"""Done when (issue 10): a requester with a Japanese, Chinese, Korean, Polish or Greek name and
subject, however their mailer wrote them, gets an acknowledgment that spells both right.

Each mail goes through the real SMTP listener over loopback (smtplib), the worker, and the sender
into the outgoing maildir; the acknowledgment is read back from the file and its To name and
Subject decoded as RFC 2047 says a mail client decodes them (section 6.2: white space between
adjacent encoded words is not text; the standard library's newer address parser keeps it, so a
long name, split over two encoded words, is decoded here with `email.header`, as clients do)."""

from __future__ import annotations

import base64
import email
import smtplib
from collections.abc import Callable, Iterator
from email.header import decode_header, make_header
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses

import pytest

from helpdesk.app import App
from intake.smtp_listener import SmtpListener
from tests.loopback import free_port
from tests.mail import SUPPORT


def encoded(text: str, charset: str) -> bytes:
    """An RFC 2047 encoded word, as the mailer in each case writes it."""
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode()}?=".encode()


def mail(from_name: bytes, subject: bytes, body: bytes, charset: str, address: str) -> bytes:
    return (
        b"From: " + from_name + b" <" + address.encode() + b">\r\n"
        b"To: " + SUPPORT.encode() + b"\r\n"
        b"Subject: " + subject + b"\r\n"
        b"Date: Mon, 24 Nov 2025 09:00:00 +0000\r\n"
        b"Message-ID: <" + address.replace("@", ".").encode() + b"@ack.example>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=" + charset.encode() + b"\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n" + body + b"\r\n"
    )


def iso2022jp(text: str) -> bytes:
    return text.encode("iso2022_jp")


# (case, raw mail, the name and subject the requester wrote)
REQUESTERS: list[tuple[str, bytes, str, str]] = [
    (
        "japanese-iso-2022-jp-encoded-words",
        mail(
            encoded("山田 花子", "iso-2022-jp"),
            encoded("プリンターが動きません", "iso-2022-jp"),
            iso2022jp("3階のプリンターが動きません。"),
            "iso-2022-jp",
            "hanako@example.jp",
        ),
        "山田 花子",
        "プリンターが動きません",
    ),
    (
        "japanese-long-name-and-subject-over-several-encoded-words",
        mail(
            encoded("山田 花子（総務部）システム管理課長代理", "iso-2022-jp"),
            encoded(
                "【至急】本社３階の複合機で両面印刷をすると二枚目以降が白紙で出力される件", "iso-2022-jp"
            ),
            iso2022jp("よろしくお願いします。"),
            "iso-2022-jp",
            "hanako.yamada@example.jp",
        ),
        "山田 花子（総務部）システム管理課長代理",
        "【至急】本社３階の複合機で両面印刷をすると二枚目以降が白紙で出力される件",
    ),
    (
        "japanese-raw-shift-jis",
        mail(
            "鈴木 一郎".encode("cp932"),
            "【至急】①番窓口のPCが起動しない".encode("cp932"),
            "①番窓口のPCが起動しません。".encode("cp932"),
            "Shift_JIS",
            "suzuki@example.jp",
        ),
        "鈴木 一郎",
        "【至急】①番窓口のPCが起動しない",
    ),
    (
        "chinese-raw-gbk-name-gb2312-subject",
        mail(
            b'"' + "朱镕基".encode("gbk") + b'"',
            encoded("打印机无法连接网络", "gb2312"),
            "三楼的打印机无法连接网络。".encode("gbk"),
            "GBK",
            "zhu@example.cn",
        ),
        "朱镕基",
        "打印机无法连接网络",
    ),
    (
        "chinese-big5-encoded-words",
        mail(
            encoded("陳大文", "big5"),
            encoded("密碼過期無法登入", "big5"),
            "我的密碼過期了。".encode("big5"),
            "big5",
            "chen@example.com.tw",
        ),
        "陳大文",
        "密碼過期無法登入",
    ),
    (
        "korean-ks-c-5601-uhc",
        mail(
            encoded("김똘똘", "cp949").replace(b"cp949", b"ks_c_5601-1987"),
            encoded("똠방 회의실 프린터 고장", "cp949").replace(b"cp949", b"ks_c_5601-1987"),
            "프린터가 고장났습니다.".encode("cp949"),
            "ks_c_5601-1987",
            "ddol@example.co.kr",
        ),
        "김똘똘",
        "똠방 회의실 프린터 고장",
    ),
    (
        "polish-raw-windows-1250",
        mail(
            b'"' + "Łukasz Wróblewski".encode("cp1250") + b'"',
            "Zgłoszenie: nie działa skaner".encode("cp1250"),
            "Skaner w pokoju 214 nie wysyła skanów.".encode("cp1250"),
            "windows-1250",
            "lukasz@example.pl",
        ),
        "Łukasz Wróblewski",
        "Zgłoszenie: nie działa skaner",
    ),
    (
        "polish-utf-8-encoded-words",
        mail(
            encoded("Zofia Żółkiewska-Gąsior", "utf-8"),
            encoded("Hasło wygasło, proszę o reset", "utf-8"),
            "Moje hasło wygasło.".encode(),
            "utf-8",
            "zofia@example.pl",
        ),
        "Zofia Żółkiewska-Gąsior",
        "Hasło wygasło, proszę o reset",
    ),
    (
        "greek-raw-iso-8859-7",
        mail(
            "Μαρία Νικολάου".encode("iso8859_7"),
            "Πρόβλημα με το VPN".encode("iso8859_7"),
            "Το VPN δεν συνδέεται.".encode("iso8859_7"),
            "iso-8859-7",
            "maria@example.gr",
        ),
        "Μαρία Νικολάου",
        "Πρόβλημα με το VPN",
    ),
    (
        "greek-long-name-utf-8",
        mail(
            encoded("Γιώργος Παπαδόπουλος-Νικολαΐδης", "utf-8"),
            encoded("Ο εκτυπωτής στον δεύτερο όροφο δεν λειτουργεί από χθες", "utf-8"),
            "Ευχαριστώ.".encode(),
            "utf-8",
            "g.papadopoulos@example.gr",
        ),
        "Γιώργος Παπαδόπουλος-Νικολαΐδης",
        "Ο εκτυπωτής στον δεύτερο όροφο δεν λειτουργεί από χθες",
    ),
    (
        "greek-utf-8-encoded-words",
        mail(
            encoded("Γιώργος Παπαδόπουλος", "utf-8"),
            encoded("Ο εκτυπωτής δεν λειτουργεί", "utf-8"),
            "Ο εκτυπωτής δεν λειτουργεί.".encode(),
            "utf-8",
            "giorgos@example.gr",
        ),
        "Γιώργος Παπαδόπουλος",
        "Ο εκτυπωτής δεν λειτουργεί",
    ),
]


@pytest.fixture
def listening(make_app: Callable[..., App]) -> Iterator[tuple[App, int]]:
    port = free_port()
    app = make_app(smtp={"listen": f"127.0.0.1:{port}"})
    listener = SmtpListener(app.settings.smtp, app.store, app.settings.identity)
    listener.start()
    yield app, port
    listener.stop()


def sent_mails(app: App) -> list[Message]:
    maildir = app.settings.outgoing.maildir
    assert maildir is not None
    return [
        email.message_from_bytes(p.read_bytes(), policy=compat32) for p in sorted((maildir / "new").iterdir())
    ]


def rfc2047(value: str) -> str:
    """A header value as a mail client shows it (RFC 2047 section 6)."""
    return str(make_header(decode_header(value)))


@pytest.mark.parametrize(("case", "data", "name", "subject"), REQUESTERS, ids=[r[0] for r in REQUESTERS])
def test_acknowledgment_spells_the_requesters_name_and_subject(
    listening: tuple[App, int], case: str, data: bytes, name: str, subject: str
) -> None:
    app, port = listening
    with smtplib.SMTP("127.0.0.1", port) as client:
        assert client.sendmail("requester@example.org", [SUPPORT], data) == {}
    report = app.worker.process_available()
    assert report.tickets_created == 1, case
    assert app.sender.deliver_due().sent == 1
    (ack,) = sent_mails(app)
    ((to_name, to_addr),) = getaddresses([ack["To"]])
    assert to_addr == data.split(b"<", 1)[1].split(b">", 1)[0].decode()
    assert rfc2047(to_name) == name
    assert rfc2047(ack["Subject"]) == f"Re: [#{report.ticket_ids[0]}] {subject}"
    body = ack.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert name in body.decode(ack.get_content_charset() or "utf-8")  # the greeting names them too
