"""MTA delivery benchmark: how long a mail takes through Postfix into a ticket, in each way of mta.md.

Against a private Postfix on loopback (tests.servers) configured with the lines of
deploy/mta.md, and a desk installed as those notes ask (`helpdesk serve` running as its own
account), for each way (SMTP relay, LMTP over TCP, LMTP over a Unix socket, the pipe to
`helpdesk ingest`): one mail to warm up, then `--mails` mails submitted to Postfix one after
another; the figures are the time until Postfix's queue is empty and until every mail has its
acknowledgment in the outgoing maildir (the ticket is committed before it). Needs root, as a
private Postfix does.

    python -m bench.mta_delivery [--mails 10] [--mode smtp|lmtp|lmtp-unix|pipe ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from tests.intake.mta_desk import MODES, MtaDesk, set_up
from tests.mail import SUPPORT, make_mail
from tests.servers import PostfixServer, ServerUnavailable


def measure(mode: str, mails: int) -> dict[str, float | str]:
    postfix, desk = PostfixServer(), MtaDesk()
    try:
        set_up(postfix, desk, mode)
        desk.serve()
        postfix.start()
        postfix.send(make_mail(subject="warm-up"), "warm@example.com", [SUPPORT])
        desk.wait_acks(1)
        started = time.monotonic()
        for number in range(mails):
            sender = f"user{number}@example.com"
            postfix.send(make_mail(sender=sender, subject=f"Problem {number}"), sender, [SUPPORT])
        submitted = time.monotonic() - started
        postfix.wait_queue_empty(600)
        out_of_queue = time.monotonic() - started
        desk.wait_acks(mails + 1, 600)
        acknowledged = time.monotonic() - started
        return {
            "mode": mode,
            "mails": mails,
            "submitted_s": round(submitted, 2),
            "out_of_postfix_s": round(out_of_queue, 2),
            "all_acknowledged_s": round(acknowledged, 2),
            "per_mail_s": round(acknowledged / mails, 3),
        }
    finally:
        desk.close()
        postfix.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mails", type=int, default=10)
    parser.add_argument("--mode", action="append", choices=MODES, help="a way of mta.md (default: all)")
    args = parser.parse_args(argv)
    try:
        for mode in args.mode or MODES:
            print(json.dumps(measure(mode, args.mails)))
    except ServerUnavailable as exc:
        print(f"cannot run: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
