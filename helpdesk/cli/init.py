"""`helpdesk init`: write helpdesk.toml if missing; create or migrate the database."""

from __future__ import annotations

import argparse
from typing import Any

from helpdesk.terminal import echo


def add_parser(sub: argparse._SubParsersAction[Any], name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text)
    p.add_argument("--address", help="the helpdesk address (default support@example.test)")
    p.add_argument("--database-url", help="database URL (default sqlite:///var/helpdesk.db)")
    p.add_argument("--listen", help="SMTP listener HOST:PORT (default 127.0.0.1:2525)")
    p.add_argument("--outgoing-url", help="maildir:PATH or smtp://host:port (default maildir:var/sent)")
    p.set_defaults(func=cmd_init, needs_settings=False)


def cmd_init(args: argparse.Namespace) -> int:
    from helpdesk.initialise import initialise

    result = initialise(
        args.config,
        address=args.address,
        database_url=args.database_url,
        listen=args.listen,
        outgoing_url=args.outgoing_url,
    )
    where = result.config_path
    echo(f"{'wrote' if result.wrote_config else 'kept'} {where}")
    if result.schema_before == result.schema_after:
        echo(f"database schema already at {result.schema_after}")
    else:
        echo(f"database schema {result.schema_before or 'created'} -> {result.schema_after}")
    for version in result.trained:
        echo(f"trained and activated the starter model {version} (from the built-in example tickets)")
    echo(f"helpdesk address: {result.settings.identity.address}")
    return 0
