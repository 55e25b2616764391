"""`helpdesk technicians import FILE | list | set EMAIL KEY=VALUE...`: who works tickets."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from helpdesk.app import build_app
from helpdesk.cli.common import EX_DATAERR, EX_NOINPUT, emit_json, reading
from helpdesk.settings import Settings
from helpdesk.terminal import cell, echo, json_text
from helpdesk.views import iso, table
from models.base import utcnow
from routing.people import PeopleError, parse_people_toml
from routing.shifts import is_on_shift
from tickets.assignment import open_loads
from tickets.roster import change_technician, coordinators, import_people, staff


def add_parser(sub: argparse._SubParsersAction[Any], name: str, help_text: str) -> None:
    technicians = sub.add_parser(name, help=help_text).add_subparsers(dest="sub", required=True)
    p = technicians.add_parser("import", help="add or update technicians and coordinators from a TOML file")
    p.add_argument("file")
    p.set_defaults(func=cmd_import)
    p = technicians.add_parser("list", help="technicians with skills, shift and load; coordinators")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = technicians.add_parser("set", help="change a technician: active=false tier=2 skills.network=4 ...")
    p.add_argument("email")
    p.add_argument("settings", nargs="+", metavar="KEY=VALUE")
    p.set_defaults(func=cmd_set)


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.file)
    try:
        people = parse_people_toml(path.read_text(encoding="utf-8"), categories=settings.routing.categories)
    except OSError as exc:
        echo(f"helpdesk technicians import: {exc}", file=sys.stderr)
        return EX_NOINPUT
    except PeopleError as exc:
        echo(f"helpdesk technicians import: {path} has problems:", file=sys.stderr)
        for problem in exc.problems:
            echo(f"  {problem}", file=sys.stderr)
        return EX_DATAERR
    with build_app(settings) as app:
        with app.sessions() as session:
            report = import_people(session, people)
            session.commit()
        echo(
            f"technicians: {len(report.created)} added, {len(report.updated)} updated, "
            f"{len(report.unchanged)} unchanged; coordinators: {len(report.coordinators_created)} added, "
            f"{len(report.coordinators_updated)} updated"
        )
        if report.not_in_file:
            echo(f"not in the file (left as they are): {', '.join(report.not_in_file)}")
        return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    with reading(settings) as session:
        members = staff(session)
        coords = [c for _, c in coordinators(session)]
        loads = open_loads(session)
    now = utcnow()
    views = [
        {
            **m.technician.as_dict(),
            "on_shift": is_on_shift(m.technician, now),
            "open_tickets": len(loads.get(m.email, [])),
            "last_assigned_at": iso(m.last_assigned_at),
        }
        for m in members
    ]
    if args.json:
        emit_json({"technicians": views, "coordinators": [c.as_dict() for c in coords]})
        return 0
    if not views:
        echo("no technicians; add them with `helpdesk technicians import FILE`")
    else:
        rows = [
            [
                v["email"],
                v["name"],
                v["tier"],
                ",".join(v["languages"]),
                "yes" if v["active"] else "no",
                "on" if v["on_shift"] else "off",
                f"{v['open_tickets']}/{v['max_open']}",
                " ".join(f"{k}={n}" for k, n in v["skills"].items()),
            ]
            for v in views
        ]
        echo(table(["email", "name", "tier", "languages", "active", "shift", "open", "skills"], rows))
    if coords:
        echo()
        echo(cell("coordinators: " + ", ".join(f"{c.name} <{c.email}>" for c in coords)))
    return 0


def cmd_set(args: argparse.Namespace, settings: Settings) -> int:
    with build_app(settings) as app:
        try:
            with app.sessions() as session:
                tech = change_technician(session, args.email, args.settings, settings.routing.categories)
                session.commit()
        except KeyError as exc:
            echo(f"helpdesk technicians set: {exc.args[0]}", file=sys.stderr)
            return 1
        except PeopleError as exc:
            for problem in exc.problems:
                echo(f"helpdesk technicians set: {problem}", file=sys.stderr)
            return EX_DATAERR
        echo(json_text(tech.as_dict(), indent=None))
        return 0
