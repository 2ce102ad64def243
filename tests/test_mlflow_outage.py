"""Team use: `--tracking-uri http://...` against a real `mlflow server` with a database
backend, and that server going away mid-search.

The search must keep going while the server is down (every trial finishes), warn once,
and deliver everything when the server returns: trial runs, their per-epoch metrics,
closed statuses, the report and the registered champion.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from tests.conftest import cli_env, sqlite_url
from tests.test_ui import free_port

TRIALS = 8


class MlflowServer:
    """`mlflow server` on loopback with a SQLite backend that outlives restarts."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--workers", "1"]
        command += ["--backend-store-uri", sqlite_url(self.folder / "server.db")]
        command += ["--artifacts-destination", str(self.folder / "artifacts")]
        log = (self.folder / "server.log").open("ab")
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise AssertionError("mlflow server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # gone, as a crashed host would be
            self.process.wait()


def finished_trials(storage: str, study: str) -> int:
    try:
        loaded = optuna.load_study(study_name=study, storage=storage)
    except KeyError:
        return 0
    return sum(t.state.is_finished() for t in loaded.get_trials(deepcopy=False))


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.mark.slow
def test_search_survives_the_tracking_server_going_away(tmp_path):
    server = MlflowServer(tmp_path)
    server.start()
    storage = sqlite_url(tmp_path / "automl.db")
    search = subprocess.Popen(
        [sys.executable, "-m", "automl", "search", "iris", "--trials", str(TRIALS)]
        + ["--max-epochs", "4", "--storage", storage, "--tracking-uri", server.url],
        cwd=tmp_path,
        env=cli_env(AUTOML_MLFLOW_PATIENCE="300"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: finished_trials(storage, "iris-auto") >= 1, 300, "the first trial")
        server.stop()
        # The search goes on without MLflow: every trial finishes while it is down.
        wait_for(lambda: finished_trials(storage, "iris-auto") == TRIALS, 300, "all trials")
        assert search.poll() is None  # waiting for the server to deliver what it holds
        server.start()
        out, err = search.communicate(timeout=300)
        check_everything_arrived(server.url, storage, search.returncode, err)
    finally:
        if search.poll() is None:
            search.kill()
        server.stop()


def check_everything_arrived(url: str, storage: str, returncode: int, err: str) -> None:
    assert returncode == 0, err
    assert err.count("is unreachable") == 1, err
    assert "caught up on" in err

    client = MlflowClient(url)
    experiment = client.get_experiment_by_name("iris-auto")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("automl.role") == "study"]
    trials = {int(r.data.tags["optuna.trial_number"]): r for r in runs if r not in parents}
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(trials) == list(range(TRIALS))  # no trial lost to the outage
    study = optuna.load_study(study_name="iris-auto", storage=storage)
    for trial in study.trials:
        run = trials[trial.number]
        assert run.info.run_name == f"trial-{trial.number}"
        assert run.info.status != "RUNNING" and run.data.tags["state"] == trial.state.name
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert sorted(m.step for m in history) == list(range(1, trial.user_attrs["epochs"] + 1))
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id, "study")}
    assert "study/leaderboard.csv" in artifacts
    champion = client.get_model_version_by_alias("iris-auto", "champion")
    assert champion.tags["trial"] == str(study.best_trial.number)
