"""Is this mail automatic? Auto-replies, bulk and list mail, bounces, our own mail, loops.

Nothing automatic ever gets an automatic answer (RFC 3834 section 2): that is how two
auto-responders are kept from writing to each other forever. The checks, in order:

1. our own mail coming back (our loop header, or From one of our addresses);
2. a loop (a mail that already passed through us, or more hops than any real route has);
3. a bounce: an RFC 3464 delivery status report, or the classic signs of one;
4. spam, as an upstream filter marked it (SpamAssassin's X-Spam-Flag and X-Spam-Status, rspamd's
   X-Spam): it may open a ticket for the coordinator to look at, and never gets a mail;
5. an auto-reply (RFC 3834 Auto-Submitted: auto-replied, vendor headers, out-of-office subjects);
6. other machine-generated mail (Auto-Submitted: auto-generated, monitoring alerts);
7. bulk and list mail (Precedence, List-Id/List-Unsubscribe, RFC 2369/2919).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from intake.parse import ParsedEmail
from notify.config import MailIdentity

LOOP_HEADER = "X-Helpdesk-Loop"
MAX_HOPS = (
    30  # Received headers; RFC 5321 section 6.3 suggests a limit of at least 100, real routes have < 20
)


class MailKind(enum.StrEnum):
    NORMAL = "normal"
    OWN = "own"  # a mail we sent, come back
    LOOP = "loop"
    BOUNCE = "bounce"
    AUTO_REPLY = "auto_reply"  # out-of-office and other answers to a mail
    AUTO_GENERATED = "auto_generated"  # alerts, notifications: may open a ticket, never get an answer
    BULK = "bulk"  # newsletters, mailing lists
    SPAM = "spam"  # marked as spam by an upstream filter: kept for the coordinator, never answered

    @property
    def answerable(self) -> bool:
        return self is MailKind.NORMAL

    @property
    def opens_ticket(self) -> bool:
        """Whether a mail of this kind that belongs to no ticket opens one."""
        return self in (MailKind.NORMAL, MailKind.AUTO_GENERATED, MailKind.BULK, MailKind.SPAM)


@dataclass(frozen=True)
class Automation:
    kind: MailKind
    reason: str = ""


_AUTO_REPLY_SUBJECT = re.compile(
    r"""^\s*(
        auto(matic)?\s*(reply|response|answer)
      | automatische\s+antwort
      | autoreply | auto:
      | out\s+of\s+(the\s+)?office
      | abwesenheitsnotiz | abwesend
      | odpowied[źz]\s+automatyczna | nieobecno[śs][ćc] | autoodpowied[źz]
      | r[ée]ponse\s+automatique | absence
      | respuesta\s+autom[áa]tica | fuera\s+de\s+la\s+oficina
      | automatisch\s+antwoord | afwezig
      | autosvar | automaattinen\s+vastaus
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_BOUNCE_SUBJECT = re.compile(
    r"""(undeliver(ed|able)|delivery\s+(status|failure|has\s+failed|problem)|returned\s+mail
      |mail\s+delivery\s+(failed|failure|system)|failure\s+notice|non[- ]delivery|nicht\s+zustellbar
      |unzustellbar|niedostarczon|could\s+not\s+be\s+delivered|(failed|failure)\s+delivery
      |delayed\s+mail|mail\s+failed|could\s+not\s+send|returning\s+to\s+sender|delivery\s+notification)""",
    re.IGNORECASE | re.VERBOSE,
)
_BOUNCE_SENDER = re.compile(
    r"(^|[\s<\"])(mailer-daemon|postmaster|post_master|mail-daemon|mailerdaemon)(@|>|\s|$)", re.IGNORECASE
)
# SpamAssassin writes X-Spam-Flag: YES and X-Spam-Status: Yes, score=...; rspamd writes X-Spam: Yes.
_SPAM_HEADERS = ("x-spam-flag", "x-spam-status", "x-spam")
_BULK_PRECEDENCE = {"bulk", "list", "junk"}
_BULK_HEADERS = (
    "list-id",
    "list-unsubscribe",
    "list-post",
    "feedback-id",
    "x-mailchimp-campaign",
    "x-campaign",
)


def classify(
    mail: ParsedEmail, identity: MailIdentity, envelope_from: str | None = None, *, own_message: bool = False
) -> Automation:
    """What kind of mail this is, with the header or sign that decided it."""
    loop = mail.header("x-helpdesk-loop")
    if own_message or (loop and identity.instance in loop.split()):
        return Automation(MailKind.OWN, f"{LOOP_HEADER}: {loop}" if loop else "our own Message-ID")
    if mail.sender and identity.is_ours(mail.sender):
        return Automation(MailKind.OWN, f"From is our own address {mail.sender}")
    hops = int(mail.header("received-count") or 0)
    if hops > MAX_HOPS:
        return Automation(MailKind.LOOP, f"{hops} Received headers")
    if mail.header("x-ms-exchange-inbox-rules-loop"):
        return Automation(MailKind.LOOP, "X-MS-Exchange-Inbox-Rules-Loop")

    bounce = _bounce_reason(mail, envelope_from)
    if bounce:
        return Automation(MailKind.BOUNCE, bounce)
    spam = _spam_reason(mail)
    if spam:
        return Automation(MailKind.SPAM, spam)

    auto_submitted = mail.header("auto-submitted").strip().lower()
    precedence = (mail.header("precedence") or mail.header("x-precedence")).strip().lower()
    if auto_submitted.startswith("auto-replied"):
        return Automation(MailKind.AUTO_REPLY, f"Auto-Submitted: {auto_submitted}")
    for name in ("x-autoreply", "x-autorespond", "x-autogenerated"):
        value = mail.header(name)
        if value and value.strip().lower() not in ("no", "false", "0"):
            return Automation(MailKind.AUTO_REPLY, f"{name}: {value}")
    suppress = mail.header("x-auto-response-suppress").lower()
    if _AUTO_REPLY_SUBJECT.match(mail.subject):
        return Automation(MailKind.AUTO_REPLY, f"subject {mail.subject[:60]!r}")
    if precedence == "auto_reply":
        return Automation(MailKind.AUTO_REPLY, "Precedence: auto_reply")
    if auto_submitted and auto_submitted != "no":
        return Automation(MailKind.AUTO_GENERATED, f"Auto-Submitted: {auto_submitted}")
    if suppress and any(word in suppress for word in ("all", "oof", "autoreply")):
        # Exchange marks its own automatic mail this way (MS-OXCMAIL 2.2.3.2.14).
        return Automation(MailKind.AUTO_GENERATED, f"X-Auto-Response-Suppress: {suppress}")
    if precedence in _BULK_PRECEDENCE:
        return Automation(MailKind.BULK, f"Precedence: {precedence}")
    for name in _BULK_HEADERS:
        if mail.header(name):
            return Automation(MailKind.BULK, f"{name} header")
    if envelope_from == "":
        # A null reverse-path (RFC 5321 section 4.5.5) is only for notifications.
        return Automation(MailKind.AUTO_GENERATED, "empty envelope sender")
    return Automation(MailKind.NORMAL)


def _spam_reason(mail: ParsedEmail) -> str:
    """The header by which an upstream filter marked the mail as spam; empty when none did.

    Any copy counts: a sender who writes "X-Spam-Flag: YES" into their own mail only stops the
    desk from writing back to themselves.
    """
    for name in _SPAM_HEADERS:
        for value in mail.headers.get(name, ()):
            verdict = value.strip().lower()
            first = verdict.replace(",", " ").replace(";", " ").split(" ", 1)[0]
            if first in ("yes", "true"):
                return f"{name}: {value.strip()[:80]}"
    return ""


def _bounce_reason(mail: ParsedEmail, envelope_from: str | None) -> str:
    if mail.report is not None and mail.report.action in ("failed", "delayed", ""):
        return f"delivery status report action={mail.report.action or '?'} status={mail.report.status or '?'}"
    if "report-type=feedback-report" in mail.header("content-type").replace(" ", "").replace('"', "").lower():
        return "abuse feedback report (RFC 5965)"
    if mail.header("x-failed-recipients"):
        return "X-Failed-Recipients header"
    from_daemon = bool(_BOUNCE_SENDER.search(mail.header("from") or mail.sender)) or envelope_from == ""
    if from_daemon and _BOUNCE_SUBJECT.search(mail.subject):
        return f"from {mail.sender or '<>'} with subject {mail.subject[:60]!r}"
    return ""
