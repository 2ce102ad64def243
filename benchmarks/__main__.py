"""One entry point for every benchmark of issue #7.

    python -m benchmarks run --full     # about 1 h on 2 cores; writes benchmarks/RESULTS.md
    python -m benchmarks run --quick    # under 10 min; writes benchmarks/quick/RESULTS.md
    python -m benchmarks run --quick --only startup,scaling   # replaces just those two
    python -m benchmarks render --full  # RESULTS.md again from results.json (after a notes edit)

Each benchmark runs in its own process (`python -m benchmarks.<name> [--quick] --json`)
one after the other, so none inherits another's TensorFlow state or competes with it
for the two cores. The runner writes RESULTS.md (the command, the machine, the date,
a table of what ran, then each benchmark's section) and results.json (every figure).
A benchmark that crashes is reported in both files and makes the exit code 1; the
numbers themselves are never asserted (CI runs `--quick` as a smoke test).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
# Cheap and short first, so a smoke run fails fast; the long quality runs last.
BENCHMARKS = (
    "startup", "overhead", "pruning", "trial_memory", "scaling", "fidelity", "quality", "recipes",
    "budget", "pareto", "tables_text",
)  # fmt: skip
TITLES = {
    "startup": "5. Start-up",
    "overhead": "2. Overhead",
    "pruning": "3. Pruning",
    "trial_memory": "4. Memory",
    "scaling": "6. Scaling",
    "quality": "1. Search quality at equal budget",
    "recipes": "7. Fast image recipe",
    "budget": "8. Budget-first search",
    "fidelity": "9. Fidelities",
    "pareto": "10. Accuracy against latency",
    "tables_text": "11. Tables and texts against scikit-learn",
}
PACKAGES = (
    "keras",
    "tensorflow-cpu",
    "tensorflow",
    "optuna",
    "mlflow",
    "keras-tuner",
    "autokeras",
    "scikit-learn",
)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            if not name.startswith("tensorflow"):  # one of the two TensorFlow builds
                versions[name] = "not installed"
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gib": round(memory_gib, 1),
        "gpu": "none" if not Path("/dev/nvidia0").exists() else "present (unused: CPU builds)",
        "python": platform.python_version(),
        "packages": versions,
        "commit": commit or "unknown",
    }


def run_benchmark(name: str, quick: bool) -> dict[str, Any]:
    """`python -m benchmarks.<name>` in a fresh process; its JSON, or the error. Past
    the end CI gives its checks (`AUTOML_CHECKS_END_BY`, see tests/conftest.py), it is
    not started."""
    end_by = os.environ.get("AUTOML_CHECKS_END_BY")
    if end_by and time.time() > float(end_by):
        print(f"benchmarks: {name} not started: past CI's time limit", file=sys.stderr)
        return {"wall_s": 0.0, "skipped": "not started: past CI's time limit"}
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "result.json"
        command = [sys.executable, "-m", f"benchmarks.{name}", "--json", str(out)]
        started = time.monotonic()
        print(f"benchmarks: {name} ...", file=sys.stderr, flush=True)
        done = subprocess.run(
            [*command, *(["--quick"] if quick else [])],
            cwd=HERE.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wall = round(time.monotonic() - started, 1)
        print(f"benchmarks: {name} took {wall} s", file=sys.stderr, flush=True)
        run: dict[str, Any] = {"wall_s": wall}
        if out.exists():  # figures written before a failure are kept and shown
            run["result"] = json.loads(out.read_text())
        if done.returncode != 0 or not out.exists():
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            run["error"] = lines[-1] if lines else f"exit code {done.returncode}"
            print(f"benchmarks: {name} FAILED: {run['error']}", file=sys.stderr)
        return run


def _section(name: str, run: dict[str, Any]) -> str:
    """A benchmark's RESULTS.md section; for one that failed midway, its section if
    its partial figures make one, else a line that says so."""
    module = importlib.import_module(f"benchmarks.{name}")
    try:
        return module.section(run["result"])
    except Exception:  # noqa: BLE001 - a failed run's partial figures may lack a part
        if "error" not in run:
            raise
        return f"## {TITLES[name]}\n\nFailed before its figures were complete: {run['error']}\n"


def render(command: str, info: dict[str, Any], runs: dict[str, dict[str, Any]]) -> str:
    """RESULTS.md: header, what ran, each section, then the hand-written notes."""
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{command}`, on {info['date']} at commit {info['commit']}.",
        "",
        f"Machine: {info['platform']}, {info['cpus']} CPU cores, {info['memory_gib']} GiB, "
        f"GPU: {info['gpu']}; Python {info['python']}; {packages}.",
        "",
        "| benchmark | wall time | status |",
        "|---|---|---|",
    ]
    for name, run in runs.items():
        status = f"failed: {run['error']}" if "error" in run else run.get("skipped", "ok")
        lines.append(f"| {TITLES[name]} | {run['wall_s']:.0f} s | {status} |")
    lines.append("")
    for name in sorted(runs, key=lambda n: int(TITLES[n].split(".")[0])):  # 2 before 10
        if "result" in runs[name]:
            lines += [_section(name, runs[name]).rstrip(), ""]
    for notes in ("NOTES.md", "EARLIER.md"):
        if (HERE / notes).exists():
            lines += [(HERE / notes).read_text().rstrip(), ""]
    return "\n".join(lines)


def main() -> None:
    """Parse `run|render --quick|--full [--only ...] [--out DIR]` and act on it."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("action", choices=["run", "render"])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true", help="smoke-sized budgets, under 10 min")
    mode.add_argument("--full", action="store_true", help="the published figures")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--out", type=Path, help="folder for RESULTS.md and results.json")
    args = parser.parse_args()
    chosen = BENCHMARKS
    if args.only:
        chosen = tuple(name.strip() for name in args.only.split(","))
        unknown = sorted(set(chosen) - set(BENCHMARKS))
        if unknown:
            parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {BENCHMARKS}")
    out = args.out or (HERE / "quick" if args.quick else HERE)
    out.mkdir(parents=True, exist_ok=True)
    if args.action == "render":
        saved = json.loads((out / "results.json").read_text())
        (out / "RESULTS.md").write_text(render(saved["command"], saved, saved["runs"]))
        return
    command = "python -m benchmarks " + " ".join(sys.argv[1:])
    info = {**machine(), "date": datetime.date.today().isoformat()}
    runs = {name: run_benchmark(name, args.quick) for name in chosen}
    previous = out / "results.json"
    if args.only and previous.exists():  # keep the other benchmarks' published figures
        saved = json.loads(previous.read_text())
        runs = {**saved["runs"], **runs}
        command = f"{saved['command']}`, then `{command}"
    (out / "results.json").write_text(json.dumps({"command": command, **info, "runs": runs}))
    (out / "RESULTS.md").write_text(render(command, info, runs))
    print(f"benchmarks: wrote {out / 'RESULTS.md'} and {out / 'results.json'}", file=sys.stderr)
    sys.exit(1 if any("error" in run for run in runs.values()) else 0)


if __name__ == "__main__":
    main()
