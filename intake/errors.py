"""Outcomes of intake, as exceptions caught in one place (the SMTP handler, `ingest`, the worker).

IntakeError
├── StoreError            the raw queue could not store a mail: SMTP 451, `ingest` exits 75
├── MailboxError          an IMAP mailbox could not be read (server gone, timeout, BYE, refused SELECT)
│   └── MailboxAuthError  the server refused our login, or no credential could be obtained
└── PipelineError         processing one stored mail failed: it is quarantined with the reason
    ├── ParseError        the bytes could not be turned into a ParsedEmail
    ├── TooSlow           parsing took longer than the processing budget; the parser was stopped
    ├── ParserDied        the parser process died on the mail (a crash, out of memory)
    └── CommandError      a technician's command line was malformed (reported back, not quarantined)
"""

from __future__ import annotations


class IntakeError(Exception):
    """Base of every intake failure."""


class StoreError(IntakeError):
    """The durable raw queue is unavailable; the sender must retry later."""


class MailboxError(IntakeError):
    """An IMAP mailbox could not be read; the poller backs off and retries, `ingest --imap` exits 75."""


class MailboxAuthError(MailboxError):
    """The IMAP server refused the login (its own words are in the message)."""


class PipelineError(IntakeError):
    """Processing one stored mail failed; it goes to quarantine, the others carry on."""


class ParseError(PipelineError):
    """The message could not be parsed."""


class TooSlow(PipelineError):
    """Parsing one mail took longer than `processing_budget`; the child process was killed."""


class ParserDied(PipelineError):
    """The child process parsing a mail ended without an answer."""


class CommandError(PipelineError):
    """A technician command was unknown or malformed."""

    def __init__(self, line_number: int, line: str, why: str) -> None:
        super().__init__(f"line {line_number}: {line!r}: {why}")
        self.line_number = line_number
        self.line = line
        self.why = why
