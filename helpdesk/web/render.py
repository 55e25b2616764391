"""The dashboard's Jinja2 templates, shared by the pages and the weekly report (which has no server).

HTML templates are autoescaped: every value from mail (subjects, names, text) is shown as text,
never as markup, and never rendered as a template itself. Only `.txt.j2` (the sign-in mail) is not.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

HERE = Path(__file__).parent


@cache
def templates() -> Environment:
    return Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(disabled_extensions=("txt.j2",), default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def stylesheet() -> str:
    return (HERE / "static" / "style.css").read_text(encoding="utf-8")
