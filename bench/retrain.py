"""`helpdesk retrain` on a real ticket export, timed as an administrator runs it.

    python -m bench.retrain [--csv PATH] [--text COLS] [--label COL]

Default: the shared data's IT ticket export (8,500 tickets, 74 assignment groups): 6,800 are
trained on, the rest held out. Prints the command's wall time against the 60 s target, and, as
the reference measured in the same run, the time of fitting the same pipeline on the same 6,800
tickets alone (what retrain adds: reading, evaluating, comparing with the active model, saving).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from bench.desk import HELPDESK, init_desk, write_config
from routing.classifier import fit_pipeline
from routing.dataset import load_csv, stratified_split

TARGET_SECONDS = 60.0


def shared_data_dir() -> Path:
    env = os.environ.get("HELPDESK_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--csv", type=Path, default=shared_data_dir() / "it-ticket-assignment" / "input_data.csv"
    )
    parser.add_argument("--text", default="Short description,Description")
    parser.add_argument("--label", default="Assignment group")
    args = parser.parse_args()
    data = load_csv(args.csv, args.text, args.label)
    split = stratified_split(data.examples)
    train = [data.examples[i] for i in split.train]
    started = time.perf_counter()
    fit_pipeline([ex.text for ex in train], [ex.label for ex in train])
    fit_only = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="helpdesk-bench-") as tmp:
        desk = Path(tmp)
        write_config(desk)
        init_desk(desk)
        argv = [*HELPDESK, "retrain", "--csv", str(args.csv), "--text", args.text, "--label", args.label]
        started = time.perf_counter()
        subprocess.run(argv, cwd=desk, check=True, capture_output=True)
        seconds = time.perf_counter() - started
    print(f"{len(data.examples)} tickets, {len(train)} trained on, {len(data.counts)} labels")
    print(f"fitting the pipeline alone: {fit_only:.1f} s (the reference)")
    verdict = "ok" if seconds < TARGET_SECONDS else "OVER"
    print(f"helpdesk retrain: {seconds:.1f} s (target < {TARGET_SECONDS:.0f} s): {verdict}")


if __name__ == "__main__":
    main()
