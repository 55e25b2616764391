"""What a change to the parser changes: every mail of the shared corpus (and tests/data) parsed by
the code of an older revision and by the code of this tree, field by field.

    python -m bench.parse_diff OLD_REV [--samples 5] [--field body] [--json FILE]

The older code is exported with `git archive` into a temporary directory (nothing is committed
or checked out); each side parses in a child process of its own, so the two never share a
module. For each of the five fields a requester's ticket depends on (sender address, display
name, subject, body, attachment names) it prints how many mails changed, with samples to check
by eye, and it lists any mail that failed or took longer than a second on either side. The
corpus is read from `$HELPDESK_SHARED_DATA` (default ../shared/data), as tests/intake/test_corpus.py.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from tests.intake.test_corpus import SHARED, corpus_messages

REPO = Path(__file__).resolve().parent.parent
FIELDS = ("sender", "name", "subject", "body", "attachments")
SLOW_SECONDS = 1.0

# Runs in the child, against whichever tree is first on sys.path: mails in (a pickle), one JSON
# line per mail out. It uses only what every revision of intake.parse offers.
_CHILD = r"""
import json, logging, pickle, sys, time
sys.path.insert(0, sys.argv[1])
logging.disable(logging.CRITICAL)
from intake.config import IntakeConfig
from intake.parse import parse_email
config = IntakeConfig()
with open(sys.argv[2], "rb") as f:
    mails = pickle.load(f)
for name, data in mails:
    started = time.perf_counter()
    try:
        mail = parse_email(data, config)
    except Exception as exc:
        row = {"name": name, "error": f"{exc.__class__.__name__}: {exc}"[:300]}
    else:
        row = {
            "name": name,
            "sender": mail.from_.addr if mail.from_ else "",
            "display": mail.from_.name if mail.from_ else "",
            "subject": mail.subject,
            "body": mail.text,
            "attachments": [a.filename for a in mail.attachments],
        }
    row["seconds"] = round(time.perf_counter() - started, 4)
    print(json.dumps(row), flush=True)
"""


def export(rev: str, into: Path) -> Path:
    """The tree of `rev` as files under `into`, from `git archive`."""
    archive = into / "tree.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", rev], check=True, stdout=out)
    tree = into / "tree"
    tree.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


def parse_all(tree: Path, mails_file: Path) -> dict[str, dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tree), str(mails_file)],
        env=env,
        cwd=tree,
        capture_output=True,
        check=False,
        timeout=3600,
    )
    if result.returncode != 0:
        raise SystemExit(f"parsing with {tree} failed:\n{result.stderr.decode()[-3000:]}")
    rows = [json.loads(line) for line in result.stdout.decode().splitlines() if line.strip()]
    return {row["name"]: row for row in rows}


_KEYS = {
    "sender": "sender",
    "name": "display",
    "subject": "subject",
    "body": "body",
    "attachments": "attachments",
}


def field_value(row: dict[str, Any], field: str) -> Any:
    return f"<error {row['error']}>" if "error" in row else row[_KEYS[field]]


def group(name: str) -> str:
    """The corpus a mail comes from: its email-* folder, or tests/data."""
    return next((part for part in name.split("/") if part.startswith("email-")), "tests/data")


def first_difference(old: str, new: str, context: int = 70) -> str:
    at = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), min(len(old), len(new)))
    start = max(0, at - 20)
    return f"at {at}: old {old[start : at + context]!r}\n      new {new[start : at + context]!r}"


def describe(field: str, old: Any, new: Any) -> str:
    if field == "body" and isinstance(old, str) and isinstance(new, str):
        return f"{len(old)} -> {len(new)} chars, {first_difference(old, new)}"
    return f"{old!r}\n      -> {new!r}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("old_rev", help="the revision to compare with, e.g. main or a commit")
    parser.add_argument("--samples", type=int, default=5, help="changed mails shown per field")
    parser.add_argument("--field", choices=FIELDS, action="append", help="only these fields (repeatable)")
    parser.add_argument("--json", type=Path, help="write every change, as JSON, to this file")
    args = parser.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"shared corpus not found at {SHARED} (set HELPDESK_SHARED_DATA)")
    messages = corpus_messages()
    messages += [
        (str(p.relative_to(REPO)), p.read_bytes()) for p in sorted((REPO / "tests" / "data").rglob("*.eml"))
    ]
    with tempfile.TemporaryDirectory(prefix="hd-parse-diff-") as tmp:
        work = Path(tmp)
        mails_file = work / "mails.pickle"
        with mails_file.open("wb") as f:
            pickle.dump(messages, f)
        old = parse_all(export(args.old_rev, work), mails_file)
        new = parse_all(REPO, mails_file)
    fields = args.field or list(FIELDS)
    print(f"{len(messages)} mails; old {args.old_rev}, new: this tree")
    for side, rows in (("old", old), ("new", new)):
        errors = [r for r in rows.values() if "error" in r]
        slow = [r for r in rows.values() if r["seconds"] > SLOW_SECONDS]
        total = sum(r["seconds"] for r in rows.values())
        print(
            f"{side}: {len(rows)} parsed in {total:.1f} s, {len(errors)} failed, {len(slow)} over {SLOW_SECONDS} s"
        )
        for row in (errors + slow)[:10]:
            print(f"    {row['name']}: {row.get('error', '')} {row['seconds']} s")
    changes: dict[str, list[dict[str, Any]]] = {}
    for field in fields:
        changed = []
        for name, _ in messages:
            before, after = field_value(old[name], field), field_value(new[name], field)
            if before != after:
                changed.append({"mail": name, "old": before, "new": after})
        changes[field] = changed
        folders = Counter(group(c["mail"]) for c in changed)
        print(f"\n{field}: {len(changed)} of {len(messages)} changed  {dict(folders.most_common())}")
        step = max(1, len(changed) // max(1, args.samples))
        for change in changed[::step][: args.samples]:
            print(f"  {change['mail']}\n      {describe(field, change['old'], change['new'])}")
    if args.json:
        args.json.write_text(json.dumps(changes, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
