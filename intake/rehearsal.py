"""A rehearsal at start: one made-up request run through the whole pipeline, then rolled back.

The first mail after a start paid for everything done once per process: SQLAlchemy compiles each
of the two dozen statements of the pipeline on first use (about 30 ms on its own), the parser
process reads its first mail, routing's arrays and the templates run for the first time. The
daemon rehearses instead, before its listener accepts anything: a request is stored, parsed in
the parser process, threaded, opened, routed, assigned and acknowledged inside one transaction
that is rolled back. Nothing of it is left: no row, no mail, no count against any budget (on
PostgreSQL the budgets count in the same transaction when it is marked `REHEARSAL`), and no
ticket number used up (on PostgreSQL a rolled-back insert still takes a number from the
sequence, so the rehearsed ticket gets a negative number of its own).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from sqlalchemy import event, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from intake.parse_ahead import Prepared, parse_group
from intake.raw_queue import Incoming, RawStore
from intake.worker import Worker, lock_claimed
from models.base import REHEARSAL
from models.leases import RAW_QUEUE, finish_threads
from models.raw_message import RawMessage, RawOutcome, RawStatus
from models.ticket import Ticket

log = logging.getLogger("helpdesk.worker")

# A plain request in the words routing is trained on, so the classifier's whole path runs.
SUBJECT = "Printer on the second floor does not print"
BODY = (
    "Hello,\n\nthe printer on the second floor shows a paper jam and prints nothing since this "
    "morning. Could someone have a look?\n\nThank you\n"
)


def rehearsal_mail(support: str, now: datetime) -> bytes:
    """The made-up request: from an address that cannot exist (RFC 2606 `.invalid`)."""
    mail = EmailMessage()
    mail["From"] = "Rehearsal <rehearsal@helpdesk.invalid>"
    mail["To"] = support
    mail["Subject"] = SUBJECT
    mail["Date"] = now.strftime("%a, %d %b %Y %H:%M:%S +0000")
    mail["Message-ID"] = make_msgid("rehearsal", "helpdesk.invalid")
    mail.set_content(BODY)
    return mail.as_bytes()


def _negative_ticket_numbers(session: Session, flush_context: Any, instances: Any) -> None:
    """Number a rehearsed ticket below zero instead of taking one from PostgreSQL's sequence."""
    for n, obj in enumerate((o for o in session.new if isinstance(o, Ticket)), start=1):
        if obj.id is None:
            obj.id = -n


def rehearse(worker: Worker, store: RawStore, support: str, now: datetime) -> bool:
    """Run one made-up request through `worker`'s pipeline and roll it all back; whether it ran.

    Run before the listener and the other parts start (the log is quiet meanwhile, and nothing
    else may share the transaction). A failure is logged and the daemon starts anyway: the
    first real mail then simply pays what the rehearsal would have.
    """
    data = rehearsal_mail(support, now)
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # the rehearsal's OPENED, ROUTED and ACK lines are not news
    try:
        outcome, ticket_id = _rehearse(worker, store, data, support, now)
    except Exception as exc:
        logging.disable(previous)
        log.warning("REHEARSAL at start failed, the first mail pays for it: %s: %s", type(exc).__name__, exc)
        return False
    logging.disable(previous)
    if ticket_id is None:
        log.warning("REHEARSAL at start did not open a ticket (%s)", outcome)
        return False
    log.info("REHEARSED a request at start (%s), rolled back", outcome and outcome.value)
    return True


def _rehearse(
    worker: Worker, store: RawStore, data: bytes, support: str, now: datetime
) -> tuple[RawOutcome | None, int | None]:
    """The worker's own steps, in the order it takes them for a mail, in one rolled-back transaction."""
    with worker._sessions() as session:
        session.info[REHEARSAL] = True
        if session.get_bind().dialect.name == "postgresql":
            event.listen(session, "before_flush", _negative_ticket_numbers)
        try:
            stored = store._store_in(session, Incoming(data, "rehearsal", envelope_to=(support,)))
            if stored.raw_id is None:
                raise LookupError("the rehearsal mail was not stored")
            lease = timedelta(seconds=60)
            RAW_QUEUE.claim(session, holder=worker.name, now=now, lease=lease, limit=1, count_attempt=True)
            session.execute(
                update(RawMessage)
                .where(RawMessage.id == stored.raw_id)
                .values(status=RawStatus.PROCESSING, claimed_by=worker.name, attempts=1)
            )
            worker._select([stored.raw_id], 1)  # its read runs; it cannot see this transaction's row
            # Every parser process reads a mail once (with the classifier's forecast, when asked).
            copies = [Prepared(stored.raw_id, data=data) for _ in range(getattr(worker.parser, "size", 1))]
            parse_group(worker.parser, copies)
            if copies[0].mail is None:
                raise LookupError(f"the rehearsal mail was not parsed: {copies[0].failure}")
            (raw,) = lock_claimed(session, [stored.raw_id])
            set_committed_value(raw, "data", data)
            result = worker._run_one(session, raw, copies[0].mail)
            finish_threads(session, [stored.raw_id])
            return result
        finally:
            session.rollback()
