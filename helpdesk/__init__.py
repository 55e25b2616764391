"""The composition root: settings, the `helpdesk` CLI and the daemon that wires the parts together.

Owns reading the configuration (settings/: one grammar, each default written once in the
package it configures), the command line (cli/: one module per command group, no SQL), how
things look there (views.py, terminal.py, report.py), the wiring (app.py) and the daemon
(daemon.py).

May import: `intake`, `tickets`, `routing`, `notify`, `models`. Nothing imports it.
"""
