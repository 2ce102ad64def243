"""Memory across many trials in one worker: RSS after each trial of a real search.

    python -m benchmarks.trial_memory --trials 50 --dataset digits

Runs `automl.search` in this process (one worker, SQLite, MLflow on SQLite, the default
space) and reads the process's resident set size from /proc after every trial. Prints
RSS after trial 5 and after the last trial, the growth between them, and a least-squares
slope per trial over trials 5..N, so a leak shows as a steady slope rather than as one
noisy pair. The baseline is the same process after trial 5 (imports, data and the
first graphs are in memory by then).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from automl.engine import SearchObserver


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class RssAfterTrial(SearchObserver):
    """Records (trial number, state, RSS MB) as each trial ends."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str, float]] = []

    def trial_ended(self, number: int, state: str, value: Any, best: Any, reason: str) -> None:
        self.rows.append((number, state, rss_mb()))


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares MB per trial."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    num = sum((x - mean_x) * (y - mean_y) for x, y in points)
    den = sum((x - mean_x) ** 2 for x, _ in points) or 1.0
    return num / den


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--max-epochs", type=int, default=5)
    args = parser.parse_args()

    import automl

    observer = RssAfterTrial()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as work:
        automl.search(
            args.dataset,
            trials=args.trials,
            max_epochs=args.max_epochs,
            storage=f"sqlite:///{work}/automl.db",
            tracking_uri=f"sqlite:///{work}/mlflow.db",
            out=Path(work) / "out",
            observer=observer,
        )
    wall = time.monotonic() - started
    rss = {number + 1: mb for number, _, mb in observer.rows}  # by trials done
    baseline, last = rss[5], rss[max(rss)]
    report = {
        "dataset": args.dataset,
        "trials": len(rss),
        "rss_after_trial_5_mb": round(baseline, 1),
        f"rss_after_trial_{max(rss)}_mb": round(last, 1),
        "growth_mb": round(last - baseline, 1),
        "slope_mb_per_trial": round(slope([(k, v) for k, v in rss.items() if k >= 5]), 2),
        "states": {
            s: sum(row[1] == s for row in observer.rows) for s in ("COMPLETE", "PRUNED", "FAIL")
        },
        "wall_s": round(wall, 1),
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "rss_by_trial_mb": {k: round(v, 1) for k, v in rss.items()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
