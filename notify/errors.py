"""What mail out raises, so callers can catch a whole family or one precise case.

NotifyError
├── DeliveryError             one attempt to hand a mail to the relay failed
│   ├── TransientError        try again later: a 4yz reply, connection trouble (RFC 5321 4.2.1)
│   └── PermanentError        do not try again: a 5yz reply
├── TokenError                a reply token cannot be made (an empty secret, a day before 1970);
│                             also a ValueError
└── OutgoingConfigError       outgoing mail has neither a maildir nor an SMTP relay; also a ValueError

TransactionTimeout (a TimeoutError, not a NotifyError)   an SMTP transaction's deadline passed;
                              smtplib reports it as a lost connection, so it is retried as one.
"""

from __future__ import annotations


class NotifyError(Exception):
    """Base of every failure of mail out."""


class DeliveryError(NotifyError):
    """One delivery attempt failed."""


class TransientError(DeliveryError):
    """Try again later (4yz reply, connection trouble)."""


class PermanentError(DeliveryError):
    """Do not try again (5yz reply)."""


class TokenError(NotifyError, ValueError):
    """A reply token cannot be made or read as asked."""


class OutgoingConfigError(NotifyError, ValueError):
    """The outgoing settings name no way to send mail."""


class TransactionTimeout(TimeoutError):
    """The transaction's deadline passed (smtplib reports it as a lost connection)."""
