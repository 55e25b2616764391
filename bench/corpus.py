"""A deterministic corpus of varied support mail for the benchmarks.

New requests in English, Polish and German; replies threaded by In-Reply-To, by References
only, or by the subject tag; HTML-only mail, attachments, 8-bit legacy charsets, long mail with
quoted history, auto-replies and list mail. The same seed gives the same bytes, so two runs
measure the same work.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

SUPPORT = "support@example.test"

_TOPICS = {
    "en": [
        (
            "Printer on floor {n} does not print",
            "The printer on floor {n} shows a paper jam but there is no paper stuck.",
        ),
        (
            "VPN disconnects every few minutes",
            "Since the update my VPN connection drops every few minutes. I cannot work.",
        ),
        ("Password expired", "My password expired and I cannot log in to my laptop. Please reset it."),
        (
            "Outlook crashes on start",
            "Outlook crashes every time I open it. I already restarted the computer.",
        ),
        ("New monitor for desk {n}", "Could we get a second monitor for desk {n}? The old one broke."),
        (
            "Phishing mail received",
            "I received a suspicious mail asking for my bank details. I did not click anything.",
        ),
    ],
    "pl": [
        (
            "Drukarka na piętrze {n} nie drukuje",
            "Drukarka na piętrze {n} pokazuje zacięcie papieru, ale papieru nie ma.",
        ),
        ("VPN się rozłącza", "Od aktualizacji połączenie VPN zrywa się co kilka minut. Nie mogę pracować."),
        ("Hasło wygasło", "Moje hasło wygasło i nie mogę się zalogować. Proszę o reset."),
        ("Outlook się zawiesza", "Outlook zawiesza się przy każdym uruchomieniu. Restart nie pomógł."),
    ],
    "de": [
        (
            "Drucker im {n}. Stock druckt nicht",
            "Der Drucker im {n}. Stock meldet Papierstau, aber es steckt kein Papier.",
        ),
        ("VPN bricht ständig ab", "Seit dem Update bricht die VPN-Verbindung alle paar Minuten ab."),
        ("Passwort abgelaufen", "Mein Passwort ist abgelaufen und ich kann mich nicht anmelden."),
        ("Outlook stürzt ab", "Outlook stürzt bei jedem Start ab. Ein Neustart hat nicht geholfen."),
    ],
}
_NAMES = [
    "Anna Nowak",
    "Jan Kowalski",
    "Zoë Müller",
    "Łukasz Wiśniewski",
    "John Smith",
    "Jürgen Groß",
    "Maria García",
]
_QUOTE = "\n".join(f"> line {i} of the earlier conversation that clients quote back" for i in range(30))


def _transport_headers(msg: EmailMessage, rng: random.Random, when: datetime) -> None:
    """The trace and authentication headers real mail arrives with (mail-parser reads them all)."""
    hops = rng.randrange(3, 7)
    for hop in range(hops):
        stamp = format_datetime(when + timedelta(seconds=hops - hop))
        msg["Received"] = (
            f"from mx{hop}.relay{rng.randrange(50)}.example.net (mx{hop}.relay.example.net "
            f"[203.0.113.{rng.randrange(1, 254)}]) by mail{hop}.corp.example.com (Postfix) with ESMTPS id "
            f"{rng.getrandbits(40):010X} for <support@example.test>; {stamp}"
        )
    msg["Authentication-Results"] = "mx.example.test; dkim=pass header.d=example.com; spf=pass; dmarc=pass"
    signature = "".join(
        rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(340)
    )
    msg["DKIM-Signature"] = (
        "v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=s2026; h=from:to:subject:date:message-id; "
        f"bh={signature[:44]}=; b={signature}"
    )
    msg["X-MS-Exchange-Organization-SCL"] = "1"
    msg["Thread-Index"] = signature[:30]
    msg["MIME-Version"] = "1.0"


@dataclass
class Corpus:
    mails: list[bytes] = field(default_factory=list)
    # index of a reply -> index of the mail it answers (its thread)
    replies: dict[int, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)


def _mail(
    rng: random.Random,
    *,
    index: int,
    sender: tuple[str, str],
    subject: str,
    body: str,
    when: datetime,
    html: bool = False,
    charset: str = "utf-8",
    headers: dict[str, str] | None = None,
    attachment: bytes | None = None,
) -> tuple[bytes, str]:
    msg = EmailMessage()
    _transport_headers(msg, rng, when)
    msg["From"] = f"{sender[0]} <{sender[1]}>"
    msg["To"] = SUPPORT
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    message_id = f"<bench.{index}.{rng.randrange(10**9)}@example.com>"
    msg["Message-ID"] = message_id
    for name, value in (headers or {}).items():
        msg[name] = value
    signature = f"\n\n--\n{sender[0]}\nIT user, Corp Example\nPhone +48 22 555 01 {index % 100:02d}\n"
    html_body = (
        "<html><head><style>p{margin:0} .sig{color:#888}</style></head><body>"
        + "".join(f"<p>{line}</p>" for line in body.split("\n"))
        + f"<div class='sig'><p>{sender[0]}</p><p>IT user, Corp Example</p></div></body></html>"
    )
    if html:
        msg.set_content(html_body, subtype="html")
    elif charset != "utf-8":
        msg.set_content(
            (body + signature).encode(charset, "replace"), maintype="text", subtype="plain", cte="8bit"
        )
        msg.replace_header("Content-Type", f"text/plain; charset={charset}")
    else:
        # What Outlook, Gmail and Thunderbird send by default: text and HTML alternatives.
        msg.set_content(body + signature)
        msg.add_alternative(html_body, subtype="html")
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="octet-stream", filename="log.txt")
    return msg.as_bytes(), message_id


def generate(count: int = 2000, seed: int = 20261122) -> Corpus:
    rng = random.Random(seed)
    corpus = Corpus()
    start = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    threads: list[
        tuple[int, str, str, tuple[str, str], str]
    ] = []  # (index, message-id, subject, sender, lang)

    def bump(kind: str) -> None:
        corpus.kinds[kind] = corpus.kinds.get(kind, 0) + 1

    for i in range(count):
        when = start + timedelta(minutes=3 * i)
        roll = rng.random()
        if threads and roll < 0.25:
            parent_index, parent_id, subject, sender, lang = rng.choice(threads)
            style = "in-reply-to" if rng.random() < 0.4 else "references"
            msg = EmailMessage()
            _transport_headers(msg, rng, when)
            msg["From"] = f"{sender[0]} <{sender[1]}>"
            msg["To"] = SUPPORT
            msg["Subject"] = f"Re: {subject}"
            msg["Date"] = format_datetime(when)
            msg["Message-ID"] = f"<bench.{i}.{rng.randrange(10**9)}@example.com>"
            if style == "in-reply-to":
                msg["In-Reply-To"] = parent_id
            msg["References"] = parent_id
            msg.set_content(f"Any news about this?\n\nOn Monday {sender[0]} wrote:\n{_QUOTE}\n")
            corpus.mails.append(msg.as_bytes())
            corpus.replies[i] = parent_index
            bump(f"reply-{style}")
            continue
        lang = rng.choices(["en", "pl", "de"], weights=[6, 2, 2])[0]
        title, text = rng.choice(_TOPICS[lang])
        n = rng.randrange(1, 12)
        name = rng.choice(_NAMES)
        sender = (name, f"user{rng.randrange(400)}@corp{rng.randrange(5)}.example.com")
        subject, body = title.format(n=n), text.format(n=n)
        kind = "plain"
        kwargs: dict[str, object] = {}
        if roll < 0.35:
            kwargs["html"] = True
            kind = "html"
        elif roll < 0.42:
            kwargs["charset"] = {"pl": "iso-8859-2", "de": "iso-8859-1", "en": "iso-8859-1"}[lang]
            kind = "8bit"
        elif roll < 0.50:
            kwargs["attachment"] = bytes(rng.getrandbits(8) for _ in range(rng.randrange(2_000, 60_000)))
            kind = "attachment"
        elif roll < 0.54:
            kwargs["headers"] = {"Auto-Submitted": "auto-replied"}
            subject = f"Automatic reply: {subject}"
            kind = "auto-reply"
        elif roll < 0.58:
            kwargs["headers"] = {"List-Id": "<announce.corp.example.com>", "Precedence": "list"}
            kind = "bulk"
        elif roll < 0.65:
            body = body + "\n\n" + "\n".join(f"Detail {k}: " + "x" * 60 for k in range(80))
            kind = "long"
        data, message_id = _mail(rng, index=i, sender=sender, subject=subject, body=body, when=when, **kwargs)  # type: ignore[arg-type]
        corpus.mails.append(data)
        bump(kind)
        if kind not in ("auto-reply", "bulk"):
            threads.append((i, message_id, subject, sender, lang))
    return corpus
