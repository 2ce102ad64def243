"""Multi-fidelity by data: `automl search cifar10 --timeout T` with and without `--subset`.

Both searches run the CLI as a user would, one after the other, in fresh folders, on the
same split and the same wall-clock budget; the only difference is `--subset F` (trials
on a stratified fraction F of the training split, the best promoted to all of it).

    python -m benchmarks.subset_fidelity --minutes 20 --subset 0.25 --data-dir ../shared/data

Prints, for each arm: test accuracy of the exported model, trials by state, distinct
configurations trained, and full-data epoch equivalents (epochs x fidelity); then the
ratio of test accuracies. The section for benchmarks/EARLIER.md is printed, not
written: numbers need the reading that goes with them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from automl.record import TrialRecord


def run_arm(minutes: float, data_dir: Path, seed: int, subset: float | None) -> dict[str, Any]:
    """One `automl search cifar10` in a fresh folder; its summary and per-trial facts."""
    import optuna

    with tempfile.TemporaryDirectory() as work:
        extra = ["--subset", str(subset)] if subset else []
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "automl", "search", "cifar10", "--timeout", f"{minutes}m"]
            + ["--data-dir", str(data_dir.resolve()), "--seed", str(seed), *extra],
            cwd=work,
            check=True,
        )
        seconds = time.monotonic() - started
        summary = json.loads((Path(work) / "automl-out/cifar10-auto/summary.json").read_text())
        study = optuna.load_study(study_name="cifar10-auto", storage=f"sqlite:///{work}/automl.db")
        trials = study.get_trials(deepcopy=False)
    facts = [TrialRecord.read(t) for t in trials]
    equivalents = sum((f.epochs or 0) * (f.fidelity or 1.0) for f in facts)
    best = TrialRecord.read(study.best_trial)
    return {
        "test_accuracy": summary["test"]["metrics"]["accuracy"],
        "best_val_accuracy": summary["best"]["val_metric"],
        "best_trial": summary["best"]["trial"],
        "best_fidelity": best.fidelity or 1.0,
        "best_promoted_from": best.promoted_from,
        "trials": summary["trials"],
        "configurations": len({json.dumps(t.params, sort_keys=True) for t in trials}),
        "full_data_epochs": round(equivalents, 2),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--subset", type=float, default=0.25)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    full = run_arm(args.minutes, args.data_dir, args.seed, None)
    print("full data:", full, flush=True)
    low = run_arm(args.minutes, args.data_dir, args.seed, args.subset)
    print(f"--subset {args.subset:g}:", low, flush=True)
    ratio = low["test_accuracy"] / full["test_accuracy"]
    command = (
        f"python -m benchmarks.subset_fidelity --minutes {args.minutes:g} --subset "
        f"{args.subset:g} --data-dir {args.data_dir} --seed {args.seed}"
    )
    rows = [
        ("full data", full),
        (f"`--subset {args.subset:g}`", low),
    ]
    print(
        "\n".join(
            [
                "",
                f"`{command}` on {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
                f"{os.cpu_count()} CPU cores, no GPU. One run (one seed).",
                "",
                "| arm | test accuracy | best val accuracy | best trial (fidelity) | "
                "configurations | full-data epochs | trials | wall time (s) |",
                "|---|---|---|---|---|---|---|---|",
                *(
                    f"| {name} | {r['test_accuracy']:.4f} | {r['best_val_accuracy']:.4f} | "
                    f"{r['best_trial']} ({r['best_fidelity']:g}) | {r['configurations']} | "
                    f"{r['full_data_epochs']} | {r['trials']} | {r['seconds']} |"
                    for name, r in rows
                ),
                "",
                f"Ratio of test accuracies (subset / full): **{ratio:.3f}**.",
            ]
        )
    )


if __name__ == "__main__":
    main()
