"""The real-world fidelity corpus (tests/data/fidelity): what a careful reader takes from each mail.

Each file is written as the client named in it sends (Outlook, Apple Mail, Foxmail, Japanese
mobile carriers and mailers, fax gateways, web forms, monitoring systems), one quirk per file,
named by its class: `charset-`, `body-`, `sender-`, `header-`, `attachment-`. For each, the five
fields a requester's ticket depends on: the sender's address, their name, the subject, an
excerpt the body must hold, and the attachments' names in order. `bench.fidelity` scores a
revision of the parser against the same table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CORPUS_DIR = Path(__file__).resolve().parent.parent / "data" / "fidelity"
FIELDS = ("sender", "name", "subject", "body", "attachments")


@dataclass(frozen=True)
class Expected:
    sender: str
    name: str
    subject: str
    body: str  # an excerpt the body text must contain
    attachments: tuple[str, ...] = ()


def scores(
    expected: Expected, sender: str, name: str, subject: str, body: str, attachments: list[str]
) -> dict[str, bool]:
    """Which of the five fields a parse got right."""
    return {
        "sender": sender == expected.sender,
        "name": name == expected.name,
        "subject": subject == expected.subject,
        "body": expected.body in body,
        "attachments": tuple(attachments) == expected.attachments,
    }


CORPUS: dict[str, Expected] = {
    # -- East-Asian (and other) charsets ------------------------------------------------------
    "charset-iso2022jp-body-unlabelled.eml": Expected(
        "suzuki@example.co.jp",
        "鈴木 一郎",
        "プリンターが印刷できません",
        "3階のプリンターが今朝から印刷できません。",
    ),
    "charset-iso2022jp-nec-special-characters.eml": Expected(
        "takahashi@example.co.jp",
        "高橋 美咲",
        "①会議室のプロジェクター故障",
        "㈱サンプル総務部の高橋です。\n\n①会議室のプロジェクターが映りません。",
    ),
    "charset-iso2022jp-raw-subject-unencoded.eml": Expected(
        "sato@example.ne.jp",
        "Ken Sato",
        "ネットワークにつながらない",
        "昨日からネットワークにつながりません。",
    ),
    "charset-shift-jis-raw-subject-and-name.eml": Expected(
        "hanako@example.jp",
        "山田 花子",
        "【至急】①番窓口のPCが起動しない",
        "①番窓口のPCが電源を入れても起動しません。",
    ),
    "charset-gbk-raw-display-name.eml": Expected(
        "zhangwei@example.cn", "张伟", "打印机无法连接网络", "三楼的打印机从今天早上开始无法连接网络"
    ),
    "charset-big5-raw-subject.eml": Expected(
        "chen.dawen@example.com.tw", "陳大文", "密碼過期無法登入", "我的密碼昨天過期了"
    ),
    "charset-encoded-word-gb2312-holding-gbk.eml": Expected(
        "zhu.rongji@example.com.cn", "朱镕基", "电脑无法开机", "我的电脑今天无法开机"
    ),
    "charset-ks-c-5601-encoded-word-uhc-syllable.eml": Expected(
        "ddol@example.co.kr", "김똘똘", "똠방 회의실 프린터 고장", "똠방 회의실 프린터가 고장났습니다."
    ),
    # A name is too short to tell EUC-KR from GB2312; the subject beside it, read with it, is not.
    "charset-euc-kr-raw-name-and-subject-utf8-body.eml": Expected(
        "minsu.kim@example.co.kr",
        "김민수",
        "프린터가 작동하지 않습니다",
        "3층 프린터가 오늘 아침부터 작동하지 않습니다.",
    ),
    "charset-encoded-word-stray-padding.eml": Expected(
        "michal.wisniewski@example.pl",
        "Michał Wiśniewski",
        "Zgłoszenie awarii serwera",
        "Serwer plików nie odpowiada",
    ),
    "charset-encoded-word-utf8-declared-latin1.eml": Expected(
        "juergen.mueller@example.de",
        "Jürgen Müller",
        "Drucker im Büro 2.04 druckt nur grüne Streifen",
        "Der Drucker im Büro 2.04 druckt nur grüne Streifen.",
    ),
    "charset-iso-8859-7-raw-greek-name.eml": Expected(
        "maria.nikolaou@example.gr",
        "Μαρία Νικολάου",
        "Πρόβλημα με το VPN",
        "το VPN δεν συνδέεται από το σπίτι",
    ),
    "charset-cp1250-raw-polish-name-and-subject.eml": Expected(
        "lukasz.wroblewski@example.pl",
        "Łukasz Wróblewski",
        "Zgłoszenie: nie działa skaner",
        "skaner w pokoju 214 nie wysyła skanów na pocztę",
    ),
    # -- Bodies -------------------------------------------------------------------------------
    "body-mixed-plain-note-then-html-report.eml": Expected(
        "backup-monitor@example.com",
        "Backup Monitor",
        "Nightly backup report: 2 jobs failed",
        "FAILED: disk quota exceeded on /srv/backup",
    ),
    "body-mixed-html-image-then-plain.eml": Expected(
        "sofia.rossi@example.it",
        "Sofia Rossi",
        "Screen flickers after docking",
        "this is what the screen looks like when I dock the laptop:\nIt starts flickering",
        ("flicker.png",),
    ),
    "body-html-text-after-closing-html.eml": Expected(
        "tom.baker@example.net",
        "Tom Baker",
        "RE: VPN drops every hour",
        "tunnel keepalive timeout (error 809)",
    ),
    "body-alternative-plain-stub.eml": Expected(
        "dana.whitfield@example.com",
        "Dana Whitfield",
        "Cannot open shared calendar",
        "Since Monday I cannot open the shared calendar of the sales team.",
    ),
    "body-alternative-plain-lacks-details.eml": Expected(
        "forms@example.org",
        "Intranet Forms",
        "New request: laptop replacement",
        "The battery swells and the keyboard lifts on the left side",
    ),
    # -- Senders ------------------------------------------------------------------------------
    "sender-unbalanced-quote.eml": Expected(
        "jan.kowalski@example.pl",
        "Kowalski, Jan",
        "Brak dostepu do dysku sieciowego",
        "nie mam dostępu do dysku S:",
    ),
    "sender-trailing-dot-local-part-docomo.eml": Expected(
        "taro.@docomo.ne.jp", "山田太郎", "パスワードを忘れました", "社内システムのパスワードを忘れました。"
    ),
    "sender-name-without-brackets.eml": Expected(
        "anna.nowak@example.com",
        "Anna Nowak",
        "Fax from +48 22 555 0199 (2 pages)",
        "The toner of the fax machine",
    ),
    "sender-two-from-headers-first-garbage.eml": Expected(
        "piotr.zielinski@example.pl", "Piotr Zieliński", "Scan to e-mail does not work", "sends empty e-mails"
    ),
    "sender-no-address-in-from-reply-to-fallback.eml": Expected(
        "maria.garcia@example.es",
        "María García",
        "No puedo acceder al portal de empleados",
        "la contraseña no funciona",
    ),
    "sender-sender-header-fallback.eml": Expected(
        "lab-printer@example.edu", "Lab Printer", "Toner low (black, 3%)", "Black toner level is 3%."
    ),
    # RFC 2047 section 5: the From decodes to "ceo@bank.example", which must never become an address.
    "sender-encoded-word-address-not-decoded.eml": Expected(
        "mallory@attacker.example", "", "Urgent: reset my password", "Please reset my password"
    ),
    # Directories write "Last, First"; a gateway that drops the quotes makes two mailboxes of one.
    "sender-unquoted-comma-in-name.eml": Expected(
        "katarzyna.nowak@example.com",
        "Nowak, Katarzyna",
        "Teams does not start after the update",
        "Teams closes right after the splash screen",
    ),
    "sender-angle-address-then-stray-dot.eml": Expected(
        "jiri.dvorak@example.cz", "Jiří Dvořák", "Tiskárna nefunguje", "Tiskárna ve 2. patře nefunguje."
    ),
    # -- Headers ------------------------------------------------------------------------------
    "header-broken-fold-before-from.eml": Expected(
        "liam.oconnor@example.com",
        "Liam O'Connor",
        "Request from the website: the printer on the 3rd floor shows error 0x80070005 when printing from Excel",
        "every print from Excel fails with error 0x80070005",
    ),
    "header-first-line-not-a-header.eml": Expected(
        "grace.lee@example.com",
        "Grace Lee",
        "Outlook keeps asking for my password",
        "asks for my password every few",
    ),
    "header-leading-blank-line.eml": Expected(
        "hr-portal@example.com", "HR Portal", "Account locked after password change", "My account is locked"
    ),
    "header-space-before-colon.eml": Expected(
        "fax@example.com",
        "Fax Gateway",
        "Fax received from Acme Ltd: paper jam in tray 2",
        "paper jam in tray 2.",
    ),
    "header-utf8-byte-order-mark-first.eml": Expected(
        "g.papadopoulos@example.gr",
        "Γιώργος Παπαδόπουλος",
        "Ο εκτυπωτής δεν λειτουργεί",
        "Ο εκτυπωτής στον δεύτερο όροφο δεν λειτουργεί.",
    ),
    # A Date no calendar holds made the parse raise (OverflowError) and the mail was quarantined.
    "header-date-year-beyond-any-calendar.eml": Expected(
        "ops-robot@example.com",
        "Ops Robot",
        "Certificate for intranet.example.com expires in 3 days",
        "expires on 25 November",
    ),
    # -- Attachments --------------------------------------------------------------------------
    "attachment-video-quicktime-without-name.eml": Expected(
        "ethan.clark@example.net",
        "Ethan Clark",
        "Noise from the server room",
        "it makes this noise since Monday",
        ("rack.jpg", "part-2.mov"),
    ),
    "attachment-html-part-without-name.eml": Expected(
        "netmon@example.com",
        "Network Monitor",
        "Switch port errors on sw-core-1",
        "shows 1422 CRC errors",
        ("part-1.html",),
    ),
    "attachment-inline-images-content-id-outlook.eml": Expected(
        "mia.wong@example.com",
        "Mia Wong",
        "Error when saving to SharePoint",
        "when I save the file to SharePoint I get this error",
        ("image001.png", "image002.png"),
    ),
    "attachment-forwarded-message-outlook.eml": Expected(
        "oliver.brown@example.com",
        "Oliver Brown",
        "FW: Suspicious invoice",
        "Is this invoice genuine?",
        ("message-1.eml",),
    ),
    "attachment-raw-gbk-filename.eml": Expected(
        "lina@example.cn", "李娜", "会议记录无法打开", "附件里的会议记录无法打开", ("会议记录.docx",)
    ),
    "attachment-calendar-invitation-outlook.eml": Expected(
        "lucas.martin@example.com",
        "Lucas Martin",
        "Projector check before the board meeting",
        "check the projector in the board room",
        ("part-1.ics",),
    ),
}
