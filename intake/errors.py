"""Outcomes of intake, as exceptions caught in one place (the SMTP handler, `ingest`, the worker).

IntakeError
├── ImapConfigError       an [[imap]] mailbox is configured wrongly (also a ValueError)
├── StoreError            the raw queue could not store a mail: SMTP 451, `ingest` exits 75
├── MailboxError          an IMAP mailbox could not be read (server gone, timeout, BYE, refused SELECT)
│   └── MailboxAuthError  the server refused our login, or no credential could be obtained
└── PipelineError         processing one stored mail failed: it is quarantined with the reason
    ├── ParseError        the bytes could not be turned into a ParsedEmail
    ├── TooSlow           parsing took longer than the processing budget; the parser was stopped
    ├── ParserDied        the parser process died on the mail (a crash, out of memory)
    └── IsolatedFailure   the parser's process raised something else: its name and message

`Finished` (pipeline) is no failure: a stage ends the run early with its outcome, and only
`Pipeline.run` catches it. What `tickets` raises while a stage runs (`tickets.errors`), or the
database, quarantines the mail like a PipelineError.
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


class IsolatedFailure(PipelineError):
    """The child's parser raised something else than ParseError; the message says what and where."""


class ImapConfigError(IntakeError, ValueError):
    """An [[imap]] section is wrong; the message names the mailbox and the key."""
