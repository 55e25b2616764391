"""Mail in: the SMTP listener, the IMAP poller, `ingest`, the durable raw queue, parsing,
automatic-mail detection, threading, technician commands, the worker that runs the pipeline, and
telling the people on a ticket when a mail of ours finally failed (`intake.delivery`)."""
