"""`helpdesk web link EMAIL`: print a one-time sign-in link to the dashboard, for the administrator."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from helpdesk.cli.common import reading
from helpdesk.settings import Settings
from helpdesk.terminal import echo
from models.base import utcnow


def add_parser(sub: argparse._SubParsersAction[Any], name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    link = actions.add_parser("link", help="print a sign-in link (works once, for 15 minutes)")
    link.add_argument("email")
    link.add_argument("--next", default="", help="the page to open once signed in, e.g. /coverage")
    link.set_defaults(func=cmd_link)


def cmd_link(args: argparse.Namespace, settings: Settings) -> int:
    from helpdesk.web.auth import Signer, link_url  # only this command pays for itsdangerous
    from tickets.sign_in import viewer

    with reading(settings) as session:
        who = viewer(session, args.email)
    if who is None:
        echo(f"helpdesk: {args.email} is not an active coordinator or technician", file=sys.stderr)
        return 1
    echo(
        link_url(
            settings.web.url, Signer(settings.identity.secret), who.email, now=utcnow(), next_path=args.next
        )
    )
    return 0
