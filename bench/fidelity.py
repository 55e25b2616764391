"""How many of the five fields of the fidelity corpus a parser gets right, per field, now and before.

    python -m bench.fidelity [OLD_REV]

The corpus is tests/data/fidelity with the values a careful reader takes from each mail
(tests/intake/fidelity_corpus.py). With OLD_REV the same mails are parsed by that revision's code
too (exported with `git archive` into a temporary directory, in a child process of its own), and
both columns are printed, with the mails each field failed on.
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
from pathlib import Path
from typing import Any

from bench.parse_diff import REPO, export, parse_all
from tests.intake.fidelity_corpus import CORPUS, CORPUS_DIR, FIELDS, scores


def score_rows(rows: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """For each field, the mails it was wrong on."""
    wrong: dict[str, list[str]] = {field: [] for field in FIELDS}
    for name, expected in CORPUS.items():
        row = rows[name]
        if "error" in row:
            got = dict.fromkeys(FIELDS, False)
        else:
            got = scores(
                expected, row["sender"], row["display"], row["subject"], row["body"], row["attachments"]
            )
        for field, right in got.items():
            if not right:
                wrong[field].append(name)
    return wrong


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("old_rev", nargs="?", help="a revision to compare with, e.g. main")
    args = parser.parse_args()
    mails = [(name, (CORPUS_DIR / name).read_bytes()) for name in sorted(CORPUS)]
    with tempfile.TemporaryDirectory(prefix="hd-fidelity-") as tmp:
        work = Path(tmp)
        mails_file = work / "mails.pickle"
        with mails_file.open("wb") as f:
            pickle.dump(mails, f)
        columns = {"this tree": score_rows(parse_all(REPO, mails_file))}
        if args.old_rev:
            columns = {args.old_rev: score_rows(parse_all(export(args.old_rev, work), mails_file)), **columns}
    total = len(CORPUS)
    print(f"{total} mails in {CORPUS_DIR.relative_to(REPO)}")
    print(f"{'field':<12}" + "".join(f"{name:>16}" for name in columns))
    for field in FIELDS:
        cells = "".join(f"{(total - len(wrong[field])) / total:>15.0%} " for wrong in columns.values())
        print(f"{field:<12}{cells}")
    for name, wrong in columns.items():
        for field in FIELDS:
            if wrong[field]:
                print(f"\n{name}, {field} wrong in: {', '.join(wrong[field])}")


if __name__ == "__main__":
    main()
