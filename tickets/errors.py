"""What the ticket lifecycle raises, so callers can catch a whole family or one precise case.

TicketsError
├── CommandError      a staff command line is unknown or malformed (reported back to its author,
│                     never raised through the pipeline: nothing of the reply is applied)
├── UnknownPerson     no technician with that address (`helpdesk technicians set`)
└── KnowledgeError    an article cannot be published or changed as asked (`tickets.knowledge`)

Anything else a lifecycle step raises (a database error) rolls the mail's transaction back, and
intake quarantines the mail with the reason.
"""

from __future__ import annotations


class TicketsError(Exception):
    """Base of every ticket lifecycle failure."""


class CommandError(TicketsError):
    """A staff command was unknown or malformed."""

    def __init__(self, line_number: int, line: str, why: str) -> None:
        super().__init__(f"line {line_number}: {line!r}: {why}")
        self.line_number = line_number
        self.line = line
        self.why = why


class UnknownPerson(TicketsError, KeyError):
    """No technician has that address. A KeyError too, as it was before it had a name."""

    def __str__(self) -> str:
        # KeyError's str() quotes its argument; this one is a sentence for people.
        return str(self.args[0]) if self.args else ""


class KnowledgeError(TicketsError):
    """An article cannot be published or changed as asked (the message says why)."""
