"""The kinds of what is stored that the light paths need without the mapped tables: a ticket's
status and its groups and its priority (the settings' SLA targets are per priority), and a stored
mail's and an outgoing mail's state (a piped mail is stored, and the listings read, with the
DBAPI alone), and an IMAP mailbox's connection state. models.ticket, models.raw_message,
models.outbox and models.mailbox_state map columns of these types.
"""

from __future__ import annotations

import enum


class TicketStatus(enum.StrEnum):
    NEW = "new"
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    WAITING = "waiting"
    RESOLVED = "resolved"
    CLOSED = "closed"


# The status groups, defined once: whoever asks "is it open?" asks the same question.
# Tuples, not sets: their order keeps the SQL of `status IN (...)` the same from run to run.
OPEN_STATUSES = (TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.IN_PROGRESS, TicketStatus.WAITING)
# Being worked, so counting towards a technician's load (waiting on the requester does not count).
ACTIVE_STATUSES = (TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.IN_PROGRESS)
DONE_STATUSES = (TicketStatus.RESOLVED, TicketStatus.CLOSED)
# The SLA clock stands still while the requester is asked something, and once the ticket is done.
PAUSED_STATUSES = (TicketStatus.WAITING, *DONE_STATUSES)


class Priority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"

    @property
    def rank(self) -> int:
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2, Priority.URGENT: 3}


class RawStatus(enum.StrEnum):
    RECEIVED = "received"  # stored, waiting for the worker
    PROCESSING = "processing"  # claimed by a worker until `claimed_until`
    PROCESSED = "processed"  # the pipeline ran and its outcome is recorded
    FAILED = "failed"  # quarantined with `error`; `helpdesk quarantine retry` re-queues it


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    BOUNCED = "bounced"  # accepted, then a DSN came back


class MailboxConnState(enum.StrEnum):
    NEW = "new"  # configured, never run
    CONNECTING = "connecting"  # connecting, logging in, selecting the folder
    FETCHING = "fetching"  # storing new mail
    IDLE = "idle"  # waiting for the server to announce mail (RFC 2177 IDLE)
    POLLING = "polling"  # waiting for the next poll (server without IDLE)
    BACKOFF = "backoff"  # waiting to reconnect after an error (`last_error`)
    AUTH_FAILED = "auth_failed"  # the server refused the login (`last_error`); retried with backoff
    DISCONNECTED = "disconnected"  # a one-shot fetch (`helpdesk ingest --imap`) finished
    STOPPED = "stopped"  # the poller was stopped
