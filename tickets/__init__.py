"""The ticket lifecycle: everything that changes a ticket and causes mail, and what is read of tickets.

Owns: opening a ticket (`opening`), the status machine and reopen rules (`status`), the event
log (`events`), participants (`participants`), the mail stored on a ticket (`messages`), replies
(`replies`) and strangers' notes (`strangers`), staff replies (`staff_replies`) and their
commands (`commands`, `reply_parsing`), assignment with the mail it sends (`assignment`,
`staff_notices`, `digests`, `similar`), the roster (`roster`), the acknowledgment
(`acknowledgment`), delivery failures (`delivery`), the SLA timer (`sla_timer`), labelled
examples for retraining (`training_data`), the mail about a ticket (`mailer`), and the queries
people run on tickets (`queries`: `helpdesk tickets`, `helpdesk status`; `report`: `helpdesk report`).

May import: `routing`, `notify`, `models` (never `intake` or `helpdesk`). Intake hands a mail
over once it knows its ticket (or that it has none); every change here is an event, and the mail
it causes is written to the outbox in the caller's transaction.
"""
