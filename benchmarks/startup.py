"""Start-up: wall time of `automl --help` against `python -c pass`, side by side.

    python -m benchmarks.startup [--quick] [--json PATH]

Runs the venv's `automl` script (next to `sys.executable`) with `--help`, and
`sys.executable -c pass` as the baseline, each as a fresh subprocess, interleaved so
that both see the same machine load. One untimed run of each first warms the file
cache. Reports the median and the fastest of N runs each, the difference of the
medians and their ratio. The target (issue #7) is at most 0.5 s over the baseline:
`--help` must not import TensorFlow, Optuna or MLflow.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import benchmark_main

TARGET_S = 0.5


def timed(command: list[str]) -> float:
    """Wall seconds of one run of `command` (which must succeed)."""
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def run(quick: bool) -> dict[str, Any]:
    """Time both commands N times each, interleaved.

    Args:
        quick: 10 runs each instead of 30.

    Returns:
        Settings, per-command medians and minima (s), and the difference and ratio.
    """
    runs = 10 if quick else 30
    script = Path(sys.executable).parent / "automl"
    commands = {
        "automl --help": [str(script), "--help"],
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    for command in commands.values():  # warm the file cache; not timed
        timed(command)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            times[name].append(timed(command))
    median = {name: statistics.median(values) for name, values in times.items()}
    difference = median["automl --help"] - median["python -c pass"]
    return {
        "runs_each": runs,
        "automl_script": str(script),
        "python": sys.version.split()[0],
        "target_s": TARGET_S,
        "median_s": {name: round(value, 4) for name, value in median.items()},
        "min_s": {name: round(min(values), 4) for name, values in times.items()},
        "difference_s": round(difference, 4),
        "ratio": round(median["automl --help"] / median["python -c pass"], 2),
        "meets_target": difference <= TARGET_S,
        "times_s": {name: [round(t, 4) for t in values] for name, values in times.items()},
    }


def section(result: dict[str, Any]) -> str:
    """Markdown for RESULTS.md: the table and what it means."""
    rows = [
        f"| `{name}` | {result['median_s'][name]:.3f} | {result['min_s'][name]:.3f} |"
        for name in result["median_s"]
    ]
    verdict = (
        "meets the target: the command answers before any heavy framework loads"
        if result["meets_target"]
        else "misses the target: something heavy loads before the help is printed"
    )
    return "\n".join(
        [
            "## Start-up",
            "",
            f"Wall time of a fresh process, {result['runs_each']} interleaved runs each "
            f"(Python {result['python']}).",
            "",
            "| Command | Median (s) | Fastest (s) |",
            "|---|---:|---:|",
            *rows,
            "",
            "**What it means.** `automl --help` takes "
            f"{result['difference_s']:.3f} s more than an empty Python start "
            f"({result['ratio']:.1f}× the baseline; target: at most {result['target_s']} s "
            f"more), so it {verdict}.",
        ]
    )


def main() -> None:
    """`python -m benchmarks.startup [--quick] [--json PATH]`."""
    benchmark_main(__doc__, run, section, "10 runs each instead of 30")


if __name__ == "__main__":
    main()
