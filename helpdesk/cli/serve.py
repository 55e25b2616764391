"""`helpdesk serve`: the daemon (SIGHUP reloads the rules, SIGTERM stops gracefully)."""

from __future__ import annotations

import argparse
from typing import Any

from helpdesk.app import build_app
from helpdesk.daemon import Daemon
from helpdesk.files import secure_desk
from helpdesk.settings import Settings


def add_parser(sub: argparse._SubParsersAction[Any], name: str, help_text: str) -> None:
    sub.add_parser(name, help=help_text).set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    secure_desk(settings)  # a desk an older version left open to other users, before any mail comes in
    return Daemon(build_app(settings)).serve_forever()  # the daemon closes the app when it stops
