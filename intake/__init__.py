"""Mail in, up to "this mail belongs to ticket N, or to none".

Owns, one file per step of the README's flow: receiving (`smtp_listener` with `smtp_session`,
`smtp_data` and `smtp_limits`; the IMAP poller `imap_*`; `ingest` for files, stdin, maildir
and mbox), storing (`raw_queue`: the durable raw queue and its deduplication), parsing
(`parse` with `header_repair`, `bodies`, `attachments`, `addresses`, `charsets`,
`charset_guess`, `encoded_words`, `mime_text`, `quotes`, `language`, in a child process within
a time budget: `isolation`), recognising automatic mail (`automatic`), sender authentication
(`authentication`), threading (`threads`), and the pipeline (`pipeline`: `STAGES`, the one
table) with the worker that runs it (`worker`).

May import: `tickets` (to which each pipeline stage hands the mail once it knows its ticket),
`routing`, `notify`, `models`. Never `helpdesk`. Settings arrive as typed objects (`config`).
"""
