"""Mail in: the SMTP listener, the IMAP poller, `ingest`, the durable raw queue, parsing,
automatic-mail detection, threading, technician commands, and the worker that runs the pipeline."""
