"""Outcomes of intake, as exceptions caught in one place (the SMTP handler, `ingest`, the worker).

IntakeError
├── StoreError            the raw queue could not store a mail: SMTP 451, `ingest` exits 75
└── PipelineError         processing one stored mail failed: it is quarantined with the reason
    ├── ParseError        the bytes could not be turned into a ParsedEmail
    └── CommandError      a technician's command line was malformed (reported back, not quarantined)
"""

from __future__ import annotations


class IntakeError(Exception):
    """Base of every intake failure."""


class StoreError(IntakeError):
    """The durable raw queue is unavailable; the sender must retry later."""


class PipelineError(IntakeError):
    """Processing one stored mail failed; it goes to quarantine, the others carry on."""


class ParseError(PipelineError):
    """The message could not be parsed."""


class CommandError(PipelineError):
    """A technician command was unknown or malformed."""

    def __init__(self, line_number: int, line: str, why: str) -> None:
        super().__init__(f"line {line_number}: {line!r}: {why}")
        self.line_number = line_number
        self.line = line
        self.why = why
