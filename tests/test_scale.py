"""Many workers, one study: a real PostgreSQL server, a worker killed with SIGKILL, and
Optuna's JournalStorage on a file. All through the `automl` command, as a user runs it.

Slow: each test trains real (small) Keras models in several processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import mlflow
import optuna
import pytest

from automl.engine._study import count_finished, make_storage
from tests._postgres import PASSWORD, running_cluster
from tests.conftest import cli_env, mlflow_url, run_cli, sqlite_url

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def postgres():
    with running_cluster() as cluster:
        yield cluster


def load(storage: str, name: str = "iris-auto") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=make_storage(storage))


def test_three_workers_share_one_study_on_postgresql(postgres, tmp_path):
    """`--jobs 3` on PostgreSQL: 9 trials in all, none duplicated, spread over three
    processes, every trial run under the study's one MLflow parent run; the password
    never shows in output, logs, MLflow params or the study's attributes."""
    tracking = mlflow_url(tmp_path / "mlflow.db")
    result = run_cli(
        "search", "iris", "--trials", "9", "--max-epochs", "4", "--jobs", "3",
        "--storage", postgres.url, "--tracking-uri", tracking, "--out", tmp_path / "out",
        cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(postgres.url)
    assert [t.number for t in study.trials] == list(range(9))
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    workers = {t.user_attrs["worker"] for t in study.trials}
    assert len(workers) == 3, workers  # the main process and two spawned workers

    client = mlflow.MlflowClient(tracking)
    runs = client.search_runs([client.get_experiment_by_name("iris-auto").experiment_id])
    parents = [r for r in runs if r.data.tags.get("automl.role") == "study"]
    trials = [r for r in runs if r.data.tags.get("automl.role") == "trial"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.info.run_name for r in trials) == sorted(f"trial-{n}" for n in range(9))
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parents[0].info.run_id}

    logs = "".join(p.read_text() for p in (tmp_path / "out" / "workers").glob("*.log"))
    params = json.dumps([r.data.params for r in runs])
    attrs = json.dumps(study.user_attrs, default=str)
    for text in (result.stdout, result.stderr, logs, params, attrs):
        assert PASSWORD not in text
    assert parents[0].data.params["storage"].startswith("postgresql://automl:***@")

    # A worker joins a finished study: the budget is spent, it runs nothing and says so.
    again = run_cli(
        "worker", "--study", "iris-auto", "--storage", postgres.url, "--tracking-uri", tracking,
        cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert "study iris-auto holds 9 trials" in again.stdout
    assert len(load(postgres.url).trials) == 9


def test_a_worker_killed_mid_trial_is_retried_and_the_counts_add_up(postgres, tmp_path):
    """kill -9 a spawned worker while it trains: after the heartbeat grace its trial is
    FAIL (its MLflow run closed with the reason), a retry with the same params runs, and
    the study ends with exactly --trials counted trials."""
    name, trials = "iris-killed", 6
    tracking = mlflow_url(tmp_path / "mlflow.db")
    search = subprocess.Popen(
        [sys.executable, "-m", "automl", "search", "iris", "--study", name]
        + ["--trials", str(trials), "--max-epochs", "12", "--pruner", "none", "--jobs", "2"]
        + ["--storage", postgres.url, "--tracking-uri", tracking, "--out", str(tmp_path / "out")],
        cwd=tmp_path,
        env=cli_env(AUTOML_HEARTBEAT="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        victim = _running_trial_of_a_spawned_worker(postgres.url, name, search.pid)
        os.kill(victim["pid"], signal.SIGKILL)
        stdout, stderr = search.communicate(timeout=600)
    finally:
        if search.poll() is None:
            search.kill()
    assert search.returncode == 0, stderr[-3000:]

    study = load(postgres.url, name)
    killed = study.trials[victim["number"]]
    assert killed.state.name == "FAIL"
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params
    assert retries[0].state.name == "COMPLETE"
    assert count_finished(study) == trials  # the lost trial's budget went to its retry
    assert len(study.trials) == trials + 1
    assert not [t for t in study.trials if t.state.name in ("RUNNING", "WAITING")]

    client = mlflow.MlflowClient(tracking)
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    lost = next(r for r in runs if r.info.run_name == f"trial-{killed.number}")
    assert lost.info.status == "FAILED" and "worker lost" in lost.data.tags["reason"]
    assert all(r.info.status != "RUNNING" for r in runs)


def _running_trial_of_a_spawned_worker(storage: str, name: str, parent: int) -> dict:
    """Wait for a trial that a child of `parent` (a spawned worker) is training."""
    deadline = time.monotonic() + 300
    opened = make_storage(storage)  # one connection pool: a new one per poll would leak
    while time.monotonic() < deadline:
        children = set(_children(parent))
        try:
            trials = optuna.load_study(study_name=name, storage=opened).get_trials(deepcopy=False)
        except KeyError:
            trials = []
        for trial in trials:
            pid = int(trial.user_attrs.get("worker", ":0").rsplit(":", 1)[1])
            if trial.state.name == "RUNNING" and pid in children and trial.intermediate_values:
                return {"pid": pid, "number": trial.number}
        time.sleep(0.2)
    raise AssertionError("no spawned worker started training")


def _children(pid: int) -> list[int]:
    found = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def test_journal_storage_on_a_file_serves_two_workers(tmp_path):
    """`journal:///study.log`: two processes share the study through one file."""
    storage = "journal:///study.log"
    result = run_cli(
        "search", "iris", "--trials", "8", "--max-epochs", "4", "--jobs", "2",
        "--storage", storage, "--tracking-uri", mlflow_url(tmp_path / "mlflow.db"),
        cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "study.log").is_file()
    study = optuna.load_study(
        study_name="iris-auto",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.log"))
        ),
    )
    assert count_finished(study) == 8
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2
    shown = run_cli("show", "iris-auto", "--storage", storage, cwd=tmp_path)
    assert shown.returncode == 0 and "COMPLETE" in shown.stdout


def test_a_worker_whose_memory_grows_hands_its_trials_to_fresh_processes(tmp_path):
    """AUTOML_RECYCLE_MB=1: every process retires after its second trial; fresh worker
    processes take over until the budget is spent, and the counts add up."""
    storage = sqlite_url(tmp_path / "automl.db")
    result = run_cli(
        "search", "iris", "--trials", "6", "--max-epochs", "2", "--storage", storage,
        "--tracking-uri", mlflow_url(tmp_path / "mlflow.db"), "--out", tmp_path / "out",
        cwd=tmp_path, timeout=600, env=cli_env(AUTOML_RECYCLE_MB="1"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fresh worker processes take the next trials" in result.stderr
    study = load(storage)
    assert count_finished(study) == 6 and len(study.trials) == 6
    # Whether a process grows 1 MB between two iris trials is up to the allocator: the
    # first always hands over (its heap grew with TensorFlow's start); later ones may not.
    workers = {t.user_attrs["worker"] for t in study.trials}
    assert len(workers) >= 2
    log = (tmp_path / "out" / "workers" / "worker-1.log").read_text()
    assert "worker done" in log
    if len(workers) > 2:
        assert "worker retired (memory grew)" in log
