"""Is this mail automatic? Auto-replies, bulk and list mail, bounces, our own mail, loops.

Nothing automatic ever gets an automatic answer (RFC 3834 section 2): that is how two
auto-responders are kept from writing to each other forever. Each check is a small class with a
`name`, a `description` and the `kind` it finds; `CHECKS` lists them in the order they are asked,
and the first that recognises the mail decides (as GNU Mailman 3 lists its rules in a chain):

1. our own mail coming back (our loop header, or From one of our addresses);
2. a loop (a mail that already passed through us, or more hops than any real route has);
3. a bounce: an RFC 3464 delivery status report, or the classic signs of one;
4. spam, as an upstream filter marked it (SpamAssassin's X-Spam-Flag and X-Spam-Status, rspamd's
   X-Spam): it may open a ticket for the coordinator to look at, and never gets a mail;
5. an auto-reply (RFC 3834 Auto-Submitted: auto-replied, vendor headers, out-of-office subjects);
6. other machine-generated mail (Auto-Submitted: auto-generated, monitoring alerts);
7. bulk and list mail (Precedence, List-Id/List-Unsubscribe, RFC 2369/2919);
8. mail with a null reverse-path.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import ClassVar

from models.mail import ParsedEmail
from models.ticket import SPAM_TAG
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
    SPAM = SPAM_TAG  # marked as spam by an upstream filter: kept for the coordinator, never answered

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


@dataclass(frozen=True)
class Facts:
    """What the checks look at: the mail, who we are, its envelope sender, and whether its
    Message-ID is one of our own outgoing mails (looked up by the caller)."""

    mail: ParsedEmail
    identity: MailIdentity
    envelope_from: str | None = None
    own_message: bool = False

    @property
    def auto_submitted(self) -> str:
        return self.mail.header("auto-submitted").strip().lower()

    @property
    def precedence(self) -> str:
        return (self.mail.header("precedence") or self.mail.header("x-precedence")).strip().lower()


class Check:
    """One sign of automatic mail: `check` gives the reason it applies, or "" when it does not."""

    name: ClassVar[str]
    description: ClassVar[str]
    kind: ClassVar[MailKind]

    def check(self, facts: Facts) -> str:
        raise NotImplementedError


class OwnLoopHeader(Check):
    name, kind = "own-loop-header", MailKind.OWN
    description = "our loop header with our instance in it, or one of our own outgoing Message-IDs"

    def check(self, facts: Facts) -> str:
        loop = facts.mail.header("x-helpdesk-loop")
        if facts.own_message or (loop and facts.identity.instance in loop.split()):
            return f"{LOOP_HEADER}: {loop}" if loop else "our own Message-ID"
        return ""


class FromUs(Check):
    name, kind = "from-us", MailKind.OWN
    description = "From is one of our own addresses"

    def check(self, facts: Facts) -> str:
        sender = facts.mail.sender
        return f"From is our own address {sender}" if sender and facts.identity.is_ours(sender) else ""


class TooManyHops(Check):
    name, kind = "too-many-hops", MailKind.LOOP
    description = f"more than {MAX_HOPS} Received headers"

    def check(self, facts: Facts) -> str:
        hops = int(facts.mail.header("received-count") or 0)
        return f"{hops} Received headers" if hops > MAX_HOPS else ""


class ExchangeRulesLoop(Check):
    name, kind = "exchange-rules-loop", MailKind.LOOP
    description = "Exchange's X-MS-Exchange-Inbox-Rules-Loop: an inbox rule forwarded it round"

    def check(self, facts: Facts) -> str:
        return "X-MS-Exchange-Inbox-Rules-Loop" if facts.mail.header("x-ms-exchange-inbox-rules-loop") else ""


class Bounce(Check):
    name, kind = "bounce", MailKind.BOUNCE
    description = "an RFC 3464 delivery report, an RFC 5965 abuse report, or a mailer-daemon's failure notice"

    def check(self, facts: Facts) -> str:
        return _bounce_reason(facts.mail, facts.envelope_from)


class MarkedSpam(Check):
    name, kind = "marked-spam", MailKind.SPAM
    description = "an upstream filter marked it as spam (X-Spam-Flag, X-Spam-Status, X-Spam)"

    def check(self, facts: Facts) -> str:
        return _spam_reason(facts.mail)


class AutoReplied(Check):
    name, kind = "auto-replied", MailKind.AUTO_REPLY
    description = "RFC 3834 Auto-Submitted: auto-replied"

    def check(self, facts: Facts) -> str:
        value = facts.auto_submitted
        return f"Auto-Submitted: {value}" if value.startswith("auto-replied") else ""


class AutoReplyHeaders(Check):
    name, kind = "auto-reply-headers", MailKind.AUTO_REPLY
    description = "X-Autoreply, X-Autorespond or X-Autogenerated, unless they say no"

    def check(self, facts: Facts) -> str:
        for name in ("x-autoreply", "x-autorespond", "x-autogenerated"):
            value = facts.mail.header(name)
            if value and value.strip().lower() not in ("no", "false", "0"):
                return f"{name}: {value}"
        return ""


class AutoReplySubject(Check):
    name, kind = "auto-reply-subject", MailKind.AUTO_REPLY
    description = "an out-of-office or automatic-answer subject, in the languages people write to us in"

    def check(self, facts: Facts) -> str:
        subject = facts.mail.subject
        return f"subject {subject[:60]!r}" if _AUTO_REPLY_SUBJECT.match(subject) else ""


class PrecedenceAutoReply(Check):
    name, kind = "precedence-auto-reply", MailKind.AUTO_REPLY
    description = "Precedence: auto_reply"

    def check(self, facts: Facts) -> str:
        return "Precedence: auto_reply" if facts.precedence == "auto_reply" else ""


class AutoGenerated(Check):
    name, kind = "auto-generated", MailKind.AUTO_GENERATED
    description = "RFC 3834 Auto-Submitted other than no: alerts and notifications"

    def check(self, facts: Facts) -> str:
        value = facts.auto_submitted
        return f"Auto-Submitted: {value}" if value and value != "no" else ""


class ResponseSuppressed(Check):
    name, kind = "response-suppressed", MailKind.AUTO_GENERATED
    description = "X-Auto-Response-Suppress asking for no automatic answers"

    def check(self, facts: Facts) -> str:
        suppress = facts.mail.header("x-auto-response-suppress").lower()
        if suppress and any(word in suppress for word in ("all", "oof", "autoreply")):
            # Exchange marks its own automatic mail this way (MS-OXCMAIL 2.2.3.2.14).
            return f"X-Auto-Response-Suppress: {suppress}"
        return ""


class BulkPrecedence(Check):
    name, kind = "bulk-precedence", MailKind.BULK
    description = "Precedence: bulk, list or junk"

    def check(self, facts: Facts) -> str:
        precedence = facts.precedence
        return f"Precedence: {precedence}" if precedence in _BULK_PRECEDENCE else ""


class ListHeaders(Check):
    name, kind = "list-headers", MailKind.BULK
    description = "list and campaign headers (List-Id, List-Unsubscribe, RFC 2369/2919; Feedback-ID, ...)"

    def check(self, facts: Facts) -> str:
        return next((f"{name} header" for name in _BULK_HEADERS if facts.mail.header(name)), "")


class NullSender(Check):
    name, kind = "null-sender", MailKind.AUTO_GENERATED
    description = "an empty envelope sender"

    def check(self, facts: Facts) -> str:
        # A null reverse-path (RFC 5321 section 4.5.5) is only for notifications.
        return "empty envelope sender" if facts.envelope_from == "" else ""


# The chain: asked in this order, the first check that recognises the mail decides.
CHECKS: tuple[Check, ...] = (
    OwnLoopHeader(),
    FromUs(),
    TooManyHops(),
    ExchangeRulesLoop(),
    Bounce(),
    MarkedSpam(),
    AutoReplied(),
    AutoReplyHeaders(),
    AutoReplySubject(),
    PrecedenceAutoReply(),
    AutoGenerated(),
    ResponseSuppressed(),
    BulkPrecedence(),
    ListHeaders(),
    NullSender(),
)


def detect_automatic(
    mail: ParsedEmail, identity: MailIdentity, envelope_from: str | None = None, *, own_message: bool = False
) -> Automation:
    """What kind of mail this is, with the header or sign that decided it."""
    facts = Facts(mail, identity, envelope_from, own_message)
    for check in CHECKS:
        reason = check.check(facts)
        if reason:
            return Automation(check.kind, reason)
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
