"""Two machines, one study: two workers in separate working folders with separate `--out`
folders, caches and homes, sharing nothing on disk but what a real PostgreSQL server and a
real `mlflow server --serve-artifacts` (both on loopback) hold.

Both "machines" are folders of one host, so machine 2's folder is moved out of reach
while machine 1 works without it (the test says so through the study, in PostgreSQL).
The best trial is forced to come from worker 2: worker 1's space (the same file, a copy
in its own folder) waits in its first trial until another trial has completed and
machine 2 is out of reach, and then builds a model that cannot learn. Worker 1's search
must still end with the best model (fetched from MLflow's artifact store), and its
`automl export` and `refit` must work, as must worker 2's `refit` once it is back.

Slow: two searches and two refits, each its own Python process with TensorFlow.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest

from automl.engine._study import make_storage
from automl.record import TrialRecord
from tests._fresh import assert_fresh_predictions_match
from tests._postgres import PASSWORD, running_cluster
from tests.conftest import cli_env, run_cli
from tests.test_mlflow_outage import MlflowServer

pytestmark = pytest.mark.slow

STUDY = "two-machines"

SPACE = textwrap.dedent('''
    """An MLP on iris; on worker 1's search (TWO_MACHINES_STORAGE set) a model that cannot
    learn, built only once another worker's trial has completed and its machine is away."""
    import os
    import time

    import keras
    import optuna


    def build(hp, spec):
        units = hp.Choice("units", [32])
        storage = os.environ.get("TWO_MACHINES_STORAGE")
        if storage:
            _wait_for_another_trial(storage)
        inputs, x = spec.inputs()
        x = keras.layers.Dense(units, activation="relu")(x)
        head = keras.layers.Dense(
            spec.num_classes,
            activation="softmax",
            kernel_initializer="zeros",
            trainable=not storage,
        )
        model = keras.Model(inputs, head(x))
        model.compile(
            keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        return model


    def _wait_for_another_trial(storage):
        """Once a trial of ours runs (not while the plan is measured), wait until some
        trial has completed (the other worker's) and the test has hidden its machine."""
        # One storage for every poll: a new one each time would open a PostgreSQL
        # connection that lingers until garbage collection.
        storage = optuna.storages.RDBStorage(storage)
        study = optuna.load_study(study_name="two-machines", storage=storage)
        if not study.get_trials(deepcopy=False):
            return
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            try:
                if study.user_attrs.get("test.machine_2_away"):
                    return
            except Exception:  # a dropped connection must not fail this worker's trial
                pass
            time.sleep(0.5)
        raise RuntimeError("the other worker never completed a trial")
''')

IRIS = "__import__('sklearn.datasets').datasets.load_iris().data.astype('float32')"


@pytest.fixture(scope="module")
def postgres():
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture()
def mlflow_server(tmp_path):
    server = MlflowServer(tmp_path / "mlflow-server")
    server.folder.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def machine(root: Path, name: str) -> tuple[Path, dict[str, str]]:
    """A working folder with its own copy of the space, cache and home."""
    folder = root / name
    (folder / "home").mkdir(parents=True)
    (folder / "space.py").write_text(SPACE)
    env = cli_env(HOME=str(folder / "home"), AUTOML_CACHE_DIR=str(folder / "cache"))
    return folder, env


def test_worker_1_exports_and_refits_the_best_model_that_worker_2_trained(
    postgres, mlflow_server, tmp_path
):
    storage, tracking = postgres.url, mlflow_server.url
    one, env_one = machine(tmp_path, "machine-1")
    two, env_two = machine(tmp_path, "machine-2")
    common = ["--storage", storage, "--tracking-uri", tracking, "--out", "out"]
    search = subprocess.Popen(
        [sys.executable, "-m", "automl", "search", "iris", "--space", "space.py:build"]
        + ["--study", STUDY, "--trials", "2", "--max-epochs", "40", "--pruner", "none"]
        + common,
        cwd=one,
        env={**env_one, "TWO_MACHINES_STORAGE": storage},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_a_running_trial(storage)
        worker = run_cli("worker", "--study", STUDY, *common, cwd=two, env=env_two, timeout=400)
        assert worker.returncode == 0, worker.stderr[-3000:]
        away = two.rename(tmp_path / "machine-2-away")  # its checkpoints out of reach
        # The premise: worker 1's search is still waiting in its trial, so it ends
        # without machine 2 (a search already done says why in its output).
        assert search.poll() is None, search.communicate()[0][-3000:]
        _load(storage).set_user_attr("test.machine_2_away", True)
        stdout, stderr = search.communicate(timeout=400)
    finally:
        if search.poll() is None:
            search.kill()
    assert search.returncode == 0, stderr[-3000:]
    assert ", 0 failed" in stdout, stdout[-3000:]  # worker 1's trial waited, not failed

    study = _load(storage)
    best = study.best_trial
    record = TrialRecord.read(best)
    workers = {t.number: t.user_attrs["worker"] for t in study.trials}
    assert len(set(workers.values())) == 2, workers
    assert best.number != 0 and best.value > 0.7  # worker 2's trial; worker 1's is 0
    assert Path(record.model_path).is_relative_to(two / "out" / "checkpoints")
    assert record.model_artifact == f"runs:/{record.mlflow_run_id}/checkpoint/trial-1.keras"
    assert record.model_store == tracking
    assert (away / "out" / "checkpoints" / "trial-1.keras").is_file()  # trained there
    served = list((mlflow_server.folder / "artifacts").rglob("trial-1.keras"))
    assert len(served) == 1  # the server holds it, in its own artifacts folder

    # Worker 1's search ended with worker 2's model (fetched into worker 1's cache).
    summary = json.loads((one / "out" / "summary.json").read_text())
    assert summary["best"]["trial"] == best.number
    assert summary["test"]["metrics"]["accuracy"] > 0.7, summary  # chance: 0.33
    assert summary["final"]["members"][0]["trial"] == best.number
    assert list((one / "cache" / "models").rglob("trial-1.keras"))
    assert not (one / "out" / "checkpoints" / "trial-1.keras").exists()

    # Worker 1's export: the final model, and trial 1's from a cold cache.
    shutil.rmtree(one / "cache")
    exported = run_cli("export", STUDY, "--storage", storage, "--out", "final.keras",
                       cwd=one, env=env_one)  # fmt: skip
    assert exported.returncode == 0, exported.stderr[-3000:]
    by_trial = run_cli("export", STUDY, "--trial", str(best.number), "--storage", storage,
                       "--out", "trial.keras", cwd=one, env=env_one)  # fmt: skip
    assert by_trial.returncode == 0, by_trial.stderr[-3000:]
    labels = _iris_labels()
    for path in (one / "final.keras", one / "trial.keras"):
        fresh = assert_fresh_predictions_match(path, IRIS, one)
        assert (fresh.argmax(axis=1) == labels).mean() > 0.7, path

    # refit from either side: the same trial, its own model reached from both.
    reports = [_refit(storage, one, env_one)]
    away.rename(two)  # machine 2 is back
    reports.append(_refit(storage, two, env_two))
    assert [r["trial"] for r in reports] == [best.number, best.number]
    assert reports[0]["trial_test"] == reports[1]["trial_test"]
    assert reports[0]["trial_test"]["accuracy"] > 0.7

    texts = stdout + stderr + worker.stdout + worker.stderr + exported.stdout + exported.stderr
    assert PASSWORD not in texts + json.dumps(study.user_attrs) + json.dumps(best.user_attrs)


def _wait_for_a_running_trial(storage: str) -> None:
    """Worker 2 joins once worker 1 holds trial 0 (so it takes trial 1)."""
    import time

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if _load(storage).get_trials(deepcopy=False):
                return
        except KeyError:
            pass
        time.sleep(0.5)
    raise AssertionError("worker 1 never started a trial")


def _refit(storage: str, folder: Path, env: dict[str, str]) -> dict:
    refit = run_cli("refit", STUDY, "--storage", storage, "--out", "refit",
                    cwd=folder, env=env, timeout=400)  # fmt: skip
    assert refit.returncode == 0, refit.stderr[-3000:]
    return json.loads((folder / "refit" / "refit.json").read_text())


def _load(storage: str) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=make_storage(storage))


def _iris_labels() -> np.ndarray:
    from sklearn.datasets import load_iris

    return load_iris().target
