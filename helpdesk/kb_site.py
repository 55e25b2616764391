"""`helpdesk kb export --html DIR`: the published articles as a static site a team can host anywhere.

One `index.html` with every article's title, language and category and a search box, and one
`kb-N.html` per article (the address an acknowledgment links to when `[knowledge] site_url` is
set). No external assets and no requests: the styles and the search script are inline and the
search index is embedded in the page as JSON, so the site works from `file://` as well as from
any web server. Everything taken from the database is HTML-escaped; the embedded JSON cannot end
its script element early.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

# The page's own words, in each language we write; the reader's browser language picks them.
LABELS = {
    "en": {"title": "Knowledge base", "search": "Search", "all": "All languages", "none": "No article matches.",
           "back": "All articles", "category": "Category", "updated": "Updated", "version": "version"},
    "pl": {"title": "Baza wiedzy", "search": "Szukaj", "all": "Wszystkie języki", "none": "Brak pasujących artykułów.",
           "back": "Wszystkie artykuły", "category": "Kategoria", "updated": "Zaktualizowano", "version": "wersja"},
    "de": {"title": "Wissensdatenbank", "search": "Suchen", "all": "Alle Sprachen", "none": "Kein Artikel passt.",
           "back": "Alle Artikel", "category": "Kategorie", "updated": "Aktualisiert", "version": "Version"},
}  # fmt: skip
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;
color:#1d1d1f;line-height:1.5}
h1{font-size:1.6rem}input,select{font:inherit;padding:.4rem;margin:.2rem 0}input{width:60%}
ul{list-style:none;padding:0}li{margin:.8rem 0}.meta{color:#666;font-size:.9rem}
article{white-space:pre-wrap}a{color:#0b57d0}
"""
SEARCH = """
const articles = JSON.parse(document.getElementById('index').textContent);
const labels = JSON.parse(document.getElementById('labels').textContent);
const lang = (navigator.language || 'en').slice(0, 2);
const words = labels[lang] || labels.en;
const query = document.getElementById('q'), language = document.getElementById('lang');
const list = document.getElementById('list'), none = document.getElementById('none');
document.title = words.title; document.getElementById('h').textContent = words.title;
query.placeholder = words.search; language.options[0].textContent = words.all;
none.textContent = words.none;
function norm(s) { return s.toLowerCase().normalize('NFD').replace(/[\\u0300-\\u036f]/g, ''); }
function show() {
  const terms = norm(query.value).split(/\\s+/).filter(Boolean);
  let shown = 0;
  for (const a of articles) {
    const hay = norm(a.title + ' ' + a.category + ' ' + a.text);
    const ok = (!language.value || a.language === language.value) && terms.every(t => hay.includes(t));
    document.getElementById('a' + a.id).hidden = !ok;
    shown += ok;
  }
  none.hidden = shown > 0;
}
// index.html#q=printer+queue opens with that search: a link can point at the answers to a question.
const asked = new URLSearchParams(location.hash.slice(1)).get('q');
if (asked) query.value = asked;
query.addEventListener('input', show); language.addEventListener('change', show); show();
"""


@dataclass(frozen=True)
class SiteArticle:
    id: int
    title: str
    body: str
    language: str
    category: str
    version: int
    updated_at: datetime


def _script_json(value: object) -> str:
    """JSON that cannot close the script element it sits in (nor open a comment)."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e")


def _page(title: str, language: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="{html.escape(language)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        # Nothing on these pages loads from anywhere: say so to the browser as well.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def article_page(article: SiteArticle) -> str:
    words = LABELS.get(article.language, LABELS["en"])
    body = (
        f'<p><a href="index.html">← {html.escape(words["back"])}</a></p>\n'
        f"<h1>{html.escape(article.title)}</h1>\n"
        f'<p class="meta">KB-{article.id} · {html.escape(words["category"])}: {html.escape(article.category)} · '
        f"{html.escape(words['updated'])} {article.updated_at.date().isoformat()} · "
        f"{html.escape(words['version'])} {article.version}</p>\n"
        f"<article>{html.escape(article.body)}</article>"
    )
    return _page(article.title, article.language, body)


def index_page(articles: Sequence[SiteArticle]) -> str:
    languages = sorted({a.language for a in articles})
    items = "\n".join(
        f'<li id="a{a.id}" lang="{html.escape(a.language)}"><a href="kb-{a.id}.html">{html.escape(a.title)}</a>'
        f'<div class="meta">KB-{a.id} · {html.escape(a.language)} · {html.escape(a.category)}</div></li>'
        for a in articles
    )
    options = "".join(f'<option value="{html.escape(x)}">{html.escape(x)}</option>' for x in languages)
    index = [
        {"id": a.id, "title": a.title, "language": a.language, "category": a.category, "text": a.body}
        for a in articles
    ]
    body = (
        f'<h1 id="h">{LABELS["en"]["title"]}</h1>\n'
        f'<p><input id="q" type="search" placeholder="Search" autofocus> '
        f'<select id="lang"><option value="">All languages</option>{options}</select></p>\n'
        f'<ul id="list">\n{items}\n</ul>\n<p id="none" hidden>No article matches.</p>\n'
        f'<script id="index" type="application/json">{_script_json(index)}</script>\n'
        f'<script id="labels" type="application/json">{_script_json(LABELS)}</script>\n'
        f"<script>{SEARCH}</script>"
    )
    return _page(LABELS["en"]["title"], "en", body)


def export_site(articles: Sequence[SiteArticle], directory: Path) -> list[Path]:
    """Write the site into `directory` (created if missing); the files written, index first."""
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / "index.html"]
    written[0].write_text(index_page(articles), encoding="utf-8")
    for article in articles:
        path = directory / f"kb-{article.id}.html"
        path.write_text(article_page(article), encoding="utf-8")
        written.append(path)
    return written
