"""Routing: the rules engine, the text classifier and its training, technician assignment, SLA timers."""
