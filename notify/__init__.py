"""Mail out: Jinja2 templates (en, pl, de), thread-correct composition, signed reply tokens, the
transactional outbox, the hourly budgets on automatic mail, and the sender (SMTP or a maildir).

Owns: `render` and `templates/`, `compose`, `tokens` (`TokenKind`), `outbox` (writing a mail in
the caller's transaction), `budget`, `sender` with its retries, `controls` (characters that must
never reach a terminal or a header), `config`.

May import: `models`, never `routing`, `tickets`, `intake` or `helpdesk`.
"""
