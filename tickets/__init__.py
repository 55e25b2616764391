"""Tickets: everything that changes a ticket and causes mail, and what is read of tickets.

Owns the ticket lifecycle and the queries people run on tickets (queries.py: `helpdesk tickets`,
`helpdesk status`; report.py: `helpdesk report`). May import routing, notify and models; intake
and helpdesk import it, never the other way.
"""
