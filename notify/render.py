"""Jinja2 templates for every mail we write, in English, Polish and German.

Templates live in `notify/templates/<language>/<name>.txt.j2`. A language we have no template
for falls back to English. Undefined variables are errors (StrictUndefined): a typo in a template
fails loudly in the tests instead of mailing a blank to a requester.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound

TEMPLATES = Path(__file__).with_name("templates")
LANGUAGES = ("en", "pl", "de")
FALLBACK = "en"


class Renderer:
    def __init__(self, extra_dirs: Sequence[Path] = ()) -> None:
        # Site templates (extra_dirs) win over the built-in ones, so a desk can reword any mail.
        self._env = Environment(
            loader=FileSystemLoader([*map(str, extra_dirs), str(TEMPLATES)]),
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def compile_all(self) -> int:
        """Compile every template now (a daemon does it at start, so no mail waits for it)."""
        names = self._env.list_templates(filter_func=lambda name: name.endswith(".txt.j2"))
        for name in names:
            self._env.get_template(name)
        return len(names)

    def language_for(self, language: str | None) -> str:
        return language if language in LANGUAGES else FALLBACK

    def render(self, name: str, language: str | None, **context: Any) -> str:
        lang = self.language_for(language)
        try:
            template = self._env.get_template(f"{lang}/{name}.txt.j2")
        except TemplateNotFound:
            template = self._env.get_template(f"{FALLBACK}/{name}.txt.j2")
        text = template.render(**context)
        # Mail bodies end with exactly one newline; templates need not care.
        return text.rstrip() + "\n"
