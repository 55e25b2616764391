"""`helpdesk kb list [--json] | show ID | edit ID | unpublish ID | publish ID | export --html DIR`.

Articles are published by mail (`#publish TITLE` beside `#resolve`); here they are read, edited
(each edit a new version), taken off the desk's suggestions and site, and exported as a static
site. The queries are `tickets.knowledge`'s; nothing here loads the classifier.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpdesk.cli.common import emit_json, reading
from helpdesk.settings import Settings
from helpdesk.terminal import echo

if TYPE_CHECKING:
    from models.loop import Article, ArticleVersion

EDITOR = "cli"  # who an edit from the command line is recorded as


def add_parser(sub: argparse._SubParsersAction[Any], name: str, help_text: str) -> None:
    kb = sub.add_parser(name, help=help_text).add_subparsers(dest="sub", required=True)
    p = kb.add_parser("list", help="the articles (unpublished ones only with --all)")
    p.add_argument("--all", action="store_true", help="include unpublished articles")
    p.add_argument("--language", action="append", help="only articles in this language")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = kb.add_parser("show", help="one article with its source tickets and version history")
    p.add_argument("article", type=_article_id)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)
    p = kb.add_parser("edit", help="a new version of an article")
    p.add_argument("article", type=_article_id)
    p.add_argument("--title")
    text = p.add_mutually_exclusive_group()
    text.add_argument("--body", help="the new text")
    text.add_argument("--body-file", type=Path, help="read the new text from a file (- for stdin)")
    p.add_argument("--category")
    p.add_argument("--note", default="edited", help="why: kept in the version history")
    p.add_argument("--by", default=EDITOR, help="who edits it, for the version history")
    p.set_defaults(func=cmd_edit)
    p = kb.add_parser("unpublish", help="take an article off suggestions and the site (its history stays)")
    p.add_argument("article", type=_article_id)
    p.set_defaults(func=cmd_unpublish)
    p = kb.add_parser("publish", help="put an unpublished article back on suggestions and the site")
    p.add_argument("article", type=_article_id)
    p.set_defaults(func=cmd_publish)
    p = kb.add_parser("export", help="the published articles as a static, searchable site")
    p.add_argument("--html", type=Path, required=True, metavar="DIR", help="the directory to write into")
    p.set_defaults(func=cmd_export)


def _article_id(text: str) -> int:
    return int(text.upper().removeprefix("KB-").lstrip("#"))


def article_view(article: Article, versions: list[ArticleVersion] | None = None) -> dict[str, Any]:
    from helpdesk.views import iso

    view: dict[str, Any] = {
        "id": article.id,
        "title": article.title,
        "language": article.language,
        "category": article.category,
        "status": article.status.value,
        "version": article.version,
        "source_tickets": list(article.source_tickets or []),
        "created_at": iso(article.created_at),
        "updated_at": iso(article.updated_at),
        "created_by": article.created_by,
        "body": article.body,
    }
    if versions is not None:
        view["versions"] = [
            {
                "version": v.version,
                "at": iso(v.at),
                "by": v.by,
                "note": v.note,
                "title": v.title,
                "body": v.body,
            }
            for v in versions
        ]
    return view


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from helpdesk.views import table
    from tickets.knowledge import list_articles

    with reading(settings) as session:
        views = [
            article_view(a)
            for a in list_articles(session, published_only=not args.all, languages=args.language or ())
        ]
    if args.json:
        emit_json(views)
        return 0
    if not views:
        echo("no articles")
        return 0
    rows = [
        [f"KB-{v['id']}", v["status"], v["language"], v["category"], f"v{v['version']}",
         ", ".join(f"#{t}" for t in v["source_tickets"]), v["title"]]
        for v in views
    ]  # fmt: skip
    echo(table(["id", "status", "lang", "category", "ver", "tickets", "title"], rows))
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from tickets.errors import KnowledgeError
    from tickets.knowledge import article, versions

    with reading(settings) as session:
        try:
            view = article_view(article(session, args.article), versions(session, args.article))
        except KnowledgeError as exc:
            echo(str(exc), file=sys.stderr)
            return 1
    if args.json:
        emit_json(view)
        return 0
    from helpdesk.terminal import cell

    lines = [
        f"KB-{view['id']}: {view['title']}",
        f"  {view['status']}   language {view['language']}   category {view['category']}   version {view['version']}",
        f"  from tickets {', '.join(f'#{t}' for t in view['source_tickets']) or '-'}   by {view['created_by']}",
        "",
        *view["body"].splitlines(),
        "",
        "Versions:",
        *(f"  v{v['version']}  {v['at']}  by {v['by']}  ({v['note']})" for v in view["versions"]),
    ]
    echo("\n".join(cell(line) for line in lines))  # the text came from mail
    return 0


def cmd_edit(args: argparse.Namespace, settings: Settings) -> int:
    body = args.body
    if args.body_file is not None:
        body = sys.stdin.read() if str(args.body_file) == "-" else args.body_file.read_text(encoding="utf-8")
    if args.title is None and body is None and args.category is None:
        echo("nothing to change: give --title, --body/--body-file or --category", file=sys.stderr)
        return 1
    return _write(settings, args.article, "edit", title=args.title, body=body, category=args.category,
                  note=args.note, by=args.by)  # fmt: skip


def cmd_unpublish(args: argparse.Namespace, settings: Settings) -> int:
    return _write(settings, args.article, "unpublish")


def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    return _write(settings, args.article, "publish")


def _write(settings: Settings, article_id: int, action: str, **changes: Any) -> int:
    from helpdesk.app import build_app
    from models.base import utcnow
    from tickets.errors import KnowledgeError
    from tickets.knowledge import edit, set_published

    with build_app(settings) as app, app.sessions() as session:
        try:
            if action == "edit":
                if changes["category"] is not None and changes["category"] not in settings.routing.categories:
                    known = ", ".join(sorted(settings.routing.categories))
                    echo(f"unknown category {changes['category']!r}; known: {known}", file=sys.stderr)
                    return 1
                found = edit(session, article_id, now=utcnow(), **changes)
            else:
                found = set_published(session, article_id, action == "publish", now=utcnow())
        except KnowledgeError as exc:
            echo(str(exc), file=sys.stderr)
            return 1
        session.commit()
        echo(f"KB-{found.id} {found.status.value}, version {found.version}")
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from helpdesk.kb_site import SiteArticle, export_site
    from tickets.knowledge import list_articles

    with reading(settings) as session:
        articles = [
            SiteArticle(a.id, a.title, a.body, a.language, a.category, a.version, a.updated_at)
            for a in list_articles(session, published_only=True)
        ]
    written = export_site(articles, args.html)
    echo(f"wrote {len(articles)} articles to {args.html} (open {written[0]})")
    return 0
