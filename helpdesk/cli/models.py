"""`helpdesk retrain ...` and `helpdesk model list | activate VERSION | rollback | evaluate ...`.

Training and evaluating load scikit-learn; they are imported by the commands that do either.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpdesk.cli.common import EX_DATAERR, EX_USAGE, emit_json, reading
from helpdesk.settings import Settings
from helpdesk.terminal import echo
from routing.config import TARGETS
from routing.model_store import ModelStore
from tickets.training_data import examples_from_db


def add_parser(sub: argparse._SubParsersAction[Any], name: str, help_text: str) -> None:
    if name == "retrain":
        _add_retrain(sub.add_parser(name, help=help_text))
    else:
        _add_model(sub.add_parser(name, help=help_text).add_subparsers(dest="sub", required=True))


def _add_retrain(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", choices=list(TARGETS), default="category")
    p.add_argument("--from-db", action="store_true", help="learn from resolved tickets' final labels")
    p.add_argument("--csv", help="learn from a labelled CSV file")
    p.add_argument(
        "--text", help="the CSV's text column(s), comma-separated; the first is read as the subject"
    )
    p.add_argument("--label", help="the CSV's label column")
    p.add_argument(
        "--activate", action="store_true", help="use it for new mail, unless it is worse than the active one"
    )
    p.add_argument("--force", action="store_true", help="with --activate: activate even if worse")
    p.add_argument("--confusion", metavar="PNG", help="also write the confusion matrix to this file")
    p.add_argument(
        "--progress", action="store_true", help="show the progress bar even when not on a terminal"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_retrain)


def _add_model(model: argparse._SubParsersAction[Any]) -> None:
    p = model.add_parser("list", help="stored versions with their held-out figures (* = active)")
    p.add_argument("--target", choices=list(TARGETS))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_model_list)
    p = model.add_parser("activate", help="use a stored version for new mail")
    p.add_argument("version")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_model_activate)
    p = model.add_parser("rollback", help="go back to the previously active version")
    p.add_argument("--target", choices=list(TARGETS), default="category")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_model_rollback)
    p = model.add_parser("evaluate", help="evaluate a version (default: the active one) on a labelled CSV")
    p.add_argument("--csv", required=True)
    p.add_argument("--text", required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--version")
    p.add_argument("--target", choices=list(TARGETS))
    p.add_argument("--confusion", metavar="PNG")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_model_evaluate)


def _progress_bar(enabled: bool) -> tuple[Callable[[str, int, int], None], Callable[[], None]]:
    """A tqdm bar for training (on stderr, only when it is a terminal or asked for)."""
    if not enabled:
        return (lambda stage, done, total: None), (lambda: None)
    from tqdm import tqdm

    bar = tqdm(total=1, unit="step", file=sys.stderr, leave=False, dynamic_ncols=True)

    def update(stage: str, done: int, total: int) -> None:
        bar.total = max(total, 1)
        bar.n = done
        bar.set_description(stage)
        bar.refresh()

    return update, bar.close


def cmd_retrain(args: argparse.Namespace, settings: Settings) -> int:
    from routing.admin import retrain
    from routing.dataset import load_csv

    if bool(args.csv) == bool(args.from_db):
        echo(
            "helpdesk retrain: give --from-db or --csv FILE --text COL[,COL...] --label COL", file=sys.stderr
        )
        return EX_USAGE
    source: str
    if args.csv:
        if not args.text or not args.label:
            echo("helpdesk retrain: --csv needs --text COL[,COL...] and --label COL", file=sys.stderr)
            return EX_USAGE
        data = load_csv(args.csv, args.text.split(","), args.label)
        examples = list(data.examples)
        source = f"csv:{Path(args.csv).name}"
    else:
        with reading(settings) as session:
            examples = examples_from_db(session, args.target)
        source = "database"
    if len({e.label for e in examples}) < 2:
        echo(
            f"helpdesk retrain: {len(examples)} labelled examples with fewer than two {args.target} labels; "
            "nothing to learn yet (resolved tickets with a category other than triage are the examples)",
            file=sys.stderr,
        )
        return EX_DATAERR
    store = ModelStore(settings.models.dir)
    update, close = _progress_bar((not args.json and sys.stderr.isatty()) or args.progress)
    try:
        report = retrain(
            store,
            examples,
            args.target,
            activate=args.activate,
            force=args.force,
            progress=update,
            source=source,
        )
    finally:
        close()
    if args.confusion:
        report.report.write_confusion_png(args.confusion)
    if args.json:
        emit_json(report.as_dict())
    else:
        echo(report.render_text())
        echo()
        echo(report.report.render_text())
    return 0 if not report.refused else 3


def cmd_model_list(args: argparse.Namespace, settings: Settings) -> int:
    from routing.admin import list_models

    listing = list_models(ModelStore(settings.models.dir), args.target)
    if args.json:
        emit_json(listing.as_dict())
    else:
        echo(listing.render_text())
    return 0


def cmd_model_activate(args: argparse.Namespace, settings: Settings) -> int:
    from routing.admin import activate

    result = activate(ModelStore(settings.models.dir), args.version)
    emit_json(result.as_dict()) if args.json else echo(result.render_text())
    return 0


def cmd_model_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from routing.admin import rollback

    result = rollback(ModelStore(settings.models.dir), args.target)
    emit_json(result.as_dict()) if args.json else echo(result.render_text())
    return 0


def cmd_model_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from routing.admin import evaluate_csv

    report = evaluate_csv(
        ModelStore(settings.models.dir),
        args.csv,
        args.text.split(","),
        args.label,
        args.version,
        target=args.target,
        confusion_png=args.confusion,
    )
    if args.json:
        emit_json(report.as_dict())
    else:
        echo(report.render_text())
    return 0
