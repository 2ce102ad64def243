"""CI's end for the checks (`AUTOML_CHECKS_END_BY`, set by `.ci/run`): past it, slow
checks and benchmarks are not started, and each says why; the default suite runs whole."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT, cli_env


def test_past_the_end_slow_checks_are_skipped_saying_why_and_the_others_run():
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider"]
        + ["tests/test_budget.py::test_the_search_ends_near_its_budget"]
        + ["tests/test_resolution.py::test_workers_take_the_resolution_the_search_chose"],
        cwd=ROOT,
        env=cli_env(AUTOML_CHECKS_END_BY="0"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "past CI's time limit for the checks (AUTOML_CHECKS_END_BY)" in done.stdout
    assert " 1 skipped" in done.stdout and " passed" in done.stdout, done.stdout[-1000:]


def test_past_the_end_benchmarks_are_not_started_and_results_say_so(tmp_path):
    out = tmp_path / "bench"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "run", "--quick", "--only", "startup"]
        + ["--out", str(out)],
        cwd=ROOT,
        env=cli_env(AUTOML_CHECKS_END_BY="0"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (
        "| 5. Start-up | 0 s | not started: past CI's time limit |"
        in (out / "RESULTS.md").read_text()
    )
    assert "result" not in json.loads((out / "results.json").read_text())["runs"]["startup"]
