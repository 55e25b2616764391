"""How good the articles offered in acknowledgments are, per similarity threshold: the figures behind
`[knowledge] suggest_threshold`.

Run:  python -m bench.kb_suggestions [--data DIR] [--articles N] [--json FILE]

Data: the shared data folder ($HELPDESK_SHARED_DATA, else <repo root>/../shared/data):
- it-ticket-assignment: 8,500 real incidents; an article is a training ticket's short
  description (title) and description (text and request); its category is the assignment group;
- tickets-synthetic-tobi-bueck (v5 file, EN/DE, synthetic): an article is a training ticket's
  subject (title) and its agent's answer (text), its request the customer's mail; category = queue.

Method: the fixed split of `routing.dataset.stratified_split` (20% of every label held out). From
the training part, N tickets (a keyed, seeded sample) are published as articles, as a desk would
publish a fraction of what it solves. Each held-out ticket is a new request: the articles in its
language are scored exactly as the acknowledgment scores them (`tickets.suggestions.Matcher` over
`article_match_text`), and up to three at or above the threshold are offered. A suggestion is good
when its article's category is the held-out ticket's final one. Two ways are measured: on the
text alone, and "routed" as the desk runs it, where a request the classifier (trained on the same
training part, `routing.classifier.fit_pipeline`) routes with confidence at the routing threshold
or above is offered only articles of that category. Per threshold: precision (good
suggestions / suggestions offered), precision of the first suggestion, and coverage (held-out
requests that were offered anything). "chance" is the precision of an article picked at random.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from routing.classifier import TextModel, fit_pipeline
from routing.config import DEFAULT_THRESHOLD
from routing.dataset import Example, SplitSpec, stratified_split
from tickets.suggestions import Matcher, article_match_text

REPO = Path(__file__).resolve().parents[1]
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(2, 15))
OFFERED = 3  # suggestions per acknowledgment, as `[knowledge] suggestions` defaults
TARGET_PRECISION = 0.8  # "most suggestions are good": the threshold chosen is the lowest reaching it


@dataclass(frozen=True)
class Ticket:
    subject: str
    request: str
    answer: str
    category: str
    language: str
    key: str


def shared_data_dir() -> Path:
    env = os.environ.get("HELPDESK_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def _rows(path: Path) -> list[dict[str, str]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def it_tickets(data: Path) -> list[Ticket]:
    rows = _rows(data / "it-ticket-assignment" / "input_data.csv")
    return [
        Ticket(
            r["Short description"], r["Description"], r["Description"], r["Assignment group"], "en", str(i)
        )
        for i, r in enumerate(rows)
        if r["Assignment group"] and (r["Short description"] or r["Description"])
    ]


def synthetic_tickets(data: Path) -> list[Ticket]:
    rows = _rows(data / "tickets-synthetic-tobi-bueck" / "aa_dataset-tickets-multi-lang-5-2-50-version.csv")
    return [
        Ticket(r["subject"], r["body"].replace("\\n", "\n"), r["answer"].replace("\\n", "\n"), r["queue"],
               r["language"], str(i))
        for i, r in enumerate(rows)
        if r["queue"] and r["language"] in ("en", "de") and r["answer"]
    ]  # fmt: skip


def _sample(indices: Sequence[int], tickets: Sequence[Ticket], count: int) -> list[int]:
    def key(i: int) -> bytes:
        return hashlib.blake2b(f"kb:{tickets[i].key}".encode(), digest_size=8).digest()

    return sorted(sorted(indices, key=key)[:count])


def routed_categories(
    tickets: Sequence[Ticket], train: Sequence[int], test: Sequence[int]
) -> list[str | None]:
    """The category the desk's classifier gives each held-out request, None below the routing threshold."""
    pipeline = fit_pipeline(
        [(tickets[i].subject, tickets[i].request) for i in train], [tickets[i].category for i in train]
    )
    model = TextModel(pipeline, target="category", version="bench")
    predictions = model.predict_many([(tickets[i].subject, tickets[i].request) for i in test])
    return [p.label if p.confidence >= DEFAULT_THRESHOLD else None for p in predictions]


def evaluate(tickets: Sequence[Ticket], articles: int, *, routed: bool) -> dict[str, Any]:
    examples = [Example(t.subject, t.request, t.category, t.key) for t in tickets]
    split = stratified_split(examples, SplitSpec())
    published = [tickets[i] for i in _sample(split.train, tickets, articles)]
    held_out = [tickets[i] for i in split.test]
    routes = routed_categories(tickets, split.train, split.test) if routed else [None] * len(held_out)
    route_of = {id(t): r for t, r in zip(held_out, routes, strict=True)}
    offered: dict[float, list[tuple[bool, int]]] = {t: [] for t in THRESHOLDS}  # (good, rank) per offer
    covered: Counter[float] = Counter()
    chance_hits = chance_total = 0
    started = time.perf_counter()
    for language in sorted({t.language for t in held_out}):
        pool = [a for a in published if a.language == language]
        if not pool:
            continue
        matcher = Matcher([article_match_text(a.subject, a.answer, [a.subject, a.request]) for a in pool])
        shares = Counter(a.category for a in pool)
        for request in (t for t in held_out if t.language == language):
            chance_hits += shares[request.category]
            chance_total += len(pool)
            scores = matcher.scores(f"{request.subject}\n{request.request}")
            route = route_of[id(request)]
            eligible = [i for i in range(len(pool)) if route is None or pool[i].category == route]
            ranked = sorted(eligible, key=lambda i: -scores[i])[:OFFERED]
            for threshold in THRESHOLDS:
                chosen = [i for i in ranked if scores[i] >= threshold]
                covered[threshold] += bool(chosen)
                offered[threshold].extend(
                    (pool[i].category == request.category, rank) for rank, i in enumerate(chosen)
                )
    seconds = time.perf_counter() - started
    rows, reaching = [], []
    for threshold in THRESHOLDS:
        offers = offered[threshold]
        firsts = [good for good, rank in offers if rank == 0]
        if offers and sum(g for g, _ in offers) / len(offers) >= TARGET_PRECISION:
            reaching.append(threshold)
        rows.append(
            {
                "threshold": threshold,
                "offered": len(offers),
                "precision": round(sum(g for g, _ in offers) / len(offers), 3) if offers else None,
                "precision_first": round(sum(firsts) / len(firsts), 3) if firsts else None,
                "coverage": round(covered[threshold] / len(held_out), 3),
            }
        )
    return {
        "articles": len(published),
        "held_out": len(held_out),
        "categories": len({t.category for t in tickets}),
        "chance": round(chance_hits / chance_total, 3) if chance_total else None,
        "ms_per_request": round(1000 * seconds / max(len(held_out), 1), 2),
        "lowest_threshold_at_target": min(reaching) if reaching else None,
        "rows": rows,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="shared data folder")
    parser.add_argument("--articles", type=int, default=400, help="training tickets published as articles")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here as well")
    args = parser.parse_args(argv)
    data = args.data or shared_data_dir()
    results = {}
    for name, load in (
        ("it-ticket-assignment", it_tickets),
        ("tickets-synthetic-tobi-bueck (synthetic, en+de)", synthetic_tickets),
    ):
        tickets = load(data)
        results[f"{name}, text only"] = evaluate(tickets, args.articles, routed=False)
        results[f"{name}, routed"] = evaluate(tickets, args.articles, routed=True)
    for name, result in results.items():
        print(
            f"\n{name}: {result['articles']} articles, {result['held_out']} held-out requests, "
            f"{result['categories']} categories, chance {result['chance']}, {result['ms_per_request']} ms/request"
        )
        print(f"  {'threshold':>9}  {'offered':>7}  {'precision':>9}  {'first':>6}  {'coverage':>8}")
        for row in result["rows"]:
            print(
                f"  {row['threshold']:>9.2f}  {row['offered']:>7}  {row['precision'] or '-':>9}  "
                f"{row['precision_first'] or '-':>6}  {row['coverage']:>8}"
            )
        print(
            f"  lowest threshold with precision >= {TARGET_PRECISION}: {result['lowest_threshold_at_target']}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
