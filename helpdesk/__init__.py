"""The composition root: settings, the `helpdesk` CLI and the daemon that wires the parts together.

Nothing else imports this package.
"""
