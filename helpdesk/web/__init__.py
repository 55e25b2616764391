"""The coordinator's web dashboard: sign-in by mail, the queue, tickets, team, SLA, coverage, reports,
`/metrics`, `/healthz` and `/readyz`, served by `helpdesk serve` in a thread of its own.

Nothing is imported here: `helpdesk.settings` reads `helpdesk.web.config`, and the command line
must not pay for Starlette or uvicorn unless it serves or makes a sign-in link.
"""
