"""Mail out: Jinja2 templates (en, pl, de), thread-correct composition, signed reply tokens,
the transactional outbox and the sender."""
