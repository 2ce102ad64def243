"""Memory across many trials: RSS of the worker after each trial, with and without
recycling, side by side.

    python -m benchmarks.trial_memory --trials 50 --dataset digits

Runs `automl search DATASET --trials N` twice from the command line in fresh folders:
once with `AUTOML_RECYCLE_MB=0` (every trial in one process: the baseline) and once
with the default (a process retires once its RSS grew 100 MB; fresh `automl worker`
processes take over). Each trial records the RSS of the process that ran it
(`rss_mb`). Prints, per arm: RSS after trial 5 and after the last trial, their
difference, the least-squares slope in MB per trial within a process, the processes
used, trial states and wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from automl.record import TrialRecord


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares MB per trial."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    num = sum((x - mean_x) * (y - mean_y) for x, y in points)
    den = sum((x - mean_x) ** 2 for x, _ in points) or 1.0
    return num / den


def run_arm(dataset: str, trials: int, max_epochs: int, recycle_mb: str) -> dict[str, Any]:
    """One CLI search in a fresh folder; RSS per trial from the study."""
    import optuna

    with tempfile.TemporaryDirectory() as work:
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "automl", "search", dataset, "--trials", str(trials)]
            + ["--max-epochs", str(max_epochs)],
            cwd=work,
            env={**os.environ, "AUTOML_RECYCLE_MB": recycle_mb},
            check=True,
            capture_output=True,
        )
        wall = time.monotonic() - started
        study = optuna.load_study(
            study_name=f"{dataset}-auto", storage=f"sqlite:///{work}/automl.db"
        )
    facts = [TrialRecord.read(t) for t in study.trials]
    rss = {t.number + 1: f.rss_mb for t, f in zip(study.trials, facts, strict=True)}
    workers = [f.worker for f in facts]
    last = max(rss)
    within = [
        slope([(n, rss[n]) for n in rss if workers[n - 1] == w])
        for w in dict.fromkeys(workers)
        if workers.count(w) >= 3
    ]
    return {
        "recycle_mb": recycle_mb,
        "rss_after_trial_5_mb": rss[5],
        f"rss_after_trial_{last}_mb": rss[last],
        "growth_5_to_last_mb": round(rss[last] - rss[5], 1),
        "max_rss_mb": max(rss.values()),
        "slope_within_a_process_mb_per_trial": round(sorted(within)[len(within) // 2], 2),
        "processes": len(set(workers)),
        "states": {
            s: sum(t.state.name == s for t in study.trials) for s in ("COMPLETE", "PRUNED", "FAIL")
        },
        "best_value": study.best_value,
        "wall_s": round(wall, 1),
        "rss_by_trial_mb": rss,
    }


def run(quick: bool) -> dict[str, Any]:
    """Both arms on digits: 50 trials of 5 epochs (quick: 12 trials of 3 epochs)."""
    trials, max_epochs = (12, 3) if quick else (50, 5)
    arms = [run_arm("digits", trials, max_epochs, mb) for mb in ("0", "100")]
    return {"dataset": "digits", "trials": trials, "max_epochs": max_epochs, "arms": arms}


def section(result: dict[str, Any]) -> str:
    """Markdown: a row per arm, then what the growth means against the 100 MB target."""
    trials = result["trials"]
    lines = [
        f"## Memory across {trials} trials in one worker",
        "",
        f"`automl search digits --trials {trials} --max-epochs {result['max_epochs']}` from "
        "the command line in fresh folders; RSS is the `rss_mb` each trial records for the "
        "process that ran it.",
        "",
        f"| arm | RSS after trial 5 | RSS after trial {trials} | growth | max RSS | "
        "MB per trial within a process | processes | wall | best val accuracy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    names = {"0": "`AUTOML_RECYCLE_MB=0` (every trial in one process)", "100": "default (100)"}
    for arm in result["arms"]:
        lines.append(
            f"| {names[arm['recycle_mb']]} | {arm['rss_after_trial_5_mb']:.0f} MB | "
            f"{arm[f'rss_after_trial_{trials}_mb']:.0f} MB | "
            f"**{arm['growth_5_to_last_mb']:+.0f} MB** | {arm['max_rss_mb']:.0f} MB | "
            f"{arm['slope_within_a_process_mb_per_trial']} | "
            f"{arm['processes']} | {arm['wall_s']:.0f} s | {arm['best_value']:.3f} |"
        )
    one, recycled = result["arms"]
    peak = recycled["max_rss_mb"] - recycled["rss_after_trial_5_mb"]
    verdict = "meets" if max(recycled["growth_5_to_last_mb"], peak) <= 100 else "misses"
    lines += [
        "",
        f"What it means: in one process TensorFlow keeps about "
        f"{one['slope_within_a_process_mb_per_trial']} MB per trial, "
        f"{one['growth_5_to_last_mb']:+.0f} MB from trial 5 to {trials}. The default retires a "
        f"process once it grew 100 MB and a fresh worker takes over: growth "
        f"{recycled['growth_5_to_last_mb']:+.0f} MB (peak of all its processes "
        f"{peak:+.0f} MB), which "
        f"{verdict} the 100 MB target, at "
        f"{recycled['wall_s'] / one['wall_s']:.2f}x the wall time on trials of a few seconds.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """`--quick`/`--json` for the benchmark runner; otherwise the original flags."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--max-epochs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="12 trials of 3 epochs")
    parser.add_argument("--json", type=Path, help="run the runner's measurement, write it here")
    args = parser.parse_args()
    if args.json or args.quick:
        result = run(args.quick)
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
        print(section(result))
        return
    arms = [run_arm(args.dataset, args.trials, args.max_epochs, mb) for mb in ("0", "100")]
    print(json.dumps(arms, indent=2))
    base, recycled = arms
    print(
        f"\nRSS growth, trial 5 to {args.trials}: one process {base['growth_5_to_last_mb']} MB, "
        f"recycled {recycled['growth_5_to_last_mb']} MB; wall time ratio recycled/one "
        f"process {recycled['wall_s'] / base['wall_s']:.3f}"
    )


if __name__ == "__main__":
    main()
