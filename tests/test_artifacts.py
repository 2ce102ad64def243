"""Checkpoints in MLflow's artifact store (`automl/tracking/_artifacts.py`): uploaded as a
trial saves them, fetched into the cache where the file is missing, one line when the
store cannot be reached, and a failed upload that costs the trial nothing.

The two-machine search itself is in tests/test_two_machines.py.
"""

from __future__ import annotations

import logging
import types
from pathlib import Path

import mlflow
import optuna
import pytest

from automl._errors import UsageError
from automl.config import SearchConfig
from automl.objective import Objective
from automl.record import StudyRecord, TrialRecord
from automl.tracking._artifacts import cache_path, local_model, store_of, tracking_uri_for
from tests.conftest import mlflow_url, run_cli, sqlite_url
from tests.test_ui import free_port


def test_a_recorded_store_is_absolute_and_masked(tmp_path):
    assert store_of("sqlite:///mlflow.db") == f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"
    assert store_of("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    masked = store_of("postgresql://bob:s3cret@db-host/mlflow")
    assert masked == "postgresql://bob:***@db-host/mlflow"


def test_a_masked_store_takes_this_machines_password(monkeypatch):
    store = "postgresql://bob:***@db-host/mlflow"
    monkeypatch.setenv("AUTOML_TRACKING_URI", "postgresql://bob:s3cret@db-host/mlflow")
    assert tracking_uri_for(store, 3) == "postgresql://bob:s3cret@db-host/mlflow"
    monkeypatch.setenv("AUTOML_TRACKING_URI", "postgresql://bob:s3cret@other-host/mlflow")
    with pytest.raises(UsageError, match=r"of trial 3 .*bob:\*\*\*@db-host.* set AUTOML_TRACK"):
        tracking_uri_for(store, 3)


def _uploaded(tmp_path: Path) -> tuple[str, str, bytes]:
    """A file logged as a trial checkpoint in a local MLflow store: (artifact, store, bytes)."""
    from automl.tracking import StudyTracker

    tracker = StudyTracker(mlflow_url(tmp_path / "mlflow.db"), "artifacts")
    tracker.start_study(None, "artifacts", {})
    run_id = tracker.start_trial(0, "artifacts")
    upload = tracker.checkpoint_uploader(run_id)
    content = b"not really a keras file, but bytes are bytes"
    source = tmp_path / "elsewhere" / "trial-0.keras"
    source.parent.mkdir()
    source.write_bytes(content)
    facts = upload(source)
    assert facts["model_artifact"] == f"runs:/{run_id}/checkpoint/trial-0.keras"
    source.unlink()  # the other machine's file: not here
    return facts["model_artifact"], facts["model_store"], content


def _trial(**attrs: str) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(value=0.5, user_attrs=attrs)


def test_a_missing_checkpoint_is_fetched_once_into_the_cache(tmp_path, monkeypatch):
    artifact, store, content = _uploaded(tmp_path)
    monkeypatch.setenv("AUTOML_CACHE_DIR", str(tmp_path / "cache"))
    gone = str(tmp_path / "elsewhere" / "trial-0.keras")
    trial = _trial(model_path=gone, model_artifact=artifact, model_store=store)

    fetched = local_model(trial)
    assert fetched == cache_path(artifact) and fetched.read_bytes() == content
    assert fetched.is_relative_to(tmp_path / "cache")
    fetched.write_bytes(b"cached")  # a second call reads the cache, not the store
    assert local_model(trial).read_bytes() == b"cached"
    assert local_model(_trial(model_path=gone)) is None  # never uploaded: nothing to fetch


def _hand_made_study(tmp_path: Path, **attrs: str) -> str:
    """A study with one complete trial whose model lives elsewhere; returns its storage."""
    storage = sqlite_url(tmp_path / "automl.db")
    study = optuna.create_study(study_name="remote", storage=storage, direction="maximize")
    config = SearchConfig(dataset="iris", space="mlp")
    StudyRecord.new(config, "classification", Objective(), in_memory=False).write(study)
    study.add_trial(_trial(model_path=str(tmp_path / "gone" / "trial-0.keras"), **attrs))
    return storage


def test_export_from_an_unreachable_store_says_where_and_writes_nothing(tmp_path):
    port = free_port()  # nothing listens there
    store = f"http://bob:***@127.0.0.1:{port}"
    artifact = "runs:/0123456789abcdef/checkpoint/trial-0.keras"
    storage = _hand_made_study(tmp_path, model_artifact=artifact, model_store=store)
    env_uri = f"http://bob:pw-123@127.0.0.1:{port}"
    from tests.conftest import cli_env

    env = cli_env(AUTOML_TRACKING_URI=env_uri, AUTOML_CACHE_DIR=str(tmp_path / "cache"))
    out = tmp_path / "exported.keras"
    result = run_cli("export", "remote", "--storage", storage, "--out", out, cwd=tmp_path, env=env)

    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"MLflow artifact store of http://bob:***@127.0.0.1:{port}" in lines[0]
    assert "check that the tracking server runs" in lines[0]
    assert "pw-123" not in result.stderr + result.stdout
    assert not out.exists()
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert leftovers == []


def test_a_failed_upload_costs_the_trial_nothing_and_says_local_only(tmp_path, caplog):
    import keras

    from automl.engine._checkpoints import keep_if_among_best, kept_trials
    from automl.export import best_checkpoint

    def broken(path: Path) -> dict[str, str]:
        raise ConnectionError("artifact store went away")

    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    outcome = types.SimpleNamespace(model=model, value=0.9)
    encoded = types.SimpleNamespace(wrap=None)
    with caplog.at_level(logging.WARNING, logger="automl"):
        keep_if_among_best(trial, outcome, encoded, Objective(), tmp_path, upload=broken)
    study.tell(trial, 0.9)

    assert "checkpoint is local only" in caplog.text
    assert "artifact store went away" in caplog.text
    record = TrialRecord.read(study.trials[0])
    assert record.model_file == tmp_path / "trial-0.keras" and record.model_artifact is None
    kept = kept_trials(study, Objective())
    assert [t.number for t in kept] == [0]  # a later export here still finds it
    assert TrialRecord.read(kept[0]).model_file == tmp_path / "trial-0.keras"
    assert best_checkpoint(study)[1] == tmp_path / "trial-0.keras"


def test_uploads_go_to_the_trials_own_run(tmp_path):
    artifact, store, _ = _uploaded(tmp_path)
    run_id = artifact.removeprefix("runs:/").split("/")[0]
    client = mlflow.MlflowClient(mlflow_url(tmp_path / "mlflow.db"))
    assert [f.path for f in client.list_artifacts(run_id, "checkpoint")] == [
        "checkpoint/trial-0.keras"
    ]
    assert client.get_run(run_id).info.run_name == "trial-0"
    assert store == mlflow_url(tmp_path / "mlflow.db")


@pytest.mark.slow
def test_a_worker_whose_artifact_store_goes_away_keeps_its_trials_and_exports(tmp_path):
    """The tracking server dies after the first trial: the later trials still count, each
    new best says its checkpoint is local only, and `export` on this machine works."""
    import subprocess
    import sys

    from tests._fresh import assert_fresh_predictions_match
    from tests.conftest import cli_env
    from tests.test_mlflow_outage import MlflowServer, finished_trials, wait_for

    server = MlflowServer(tmp_path)
    server.start()
    storage = sqlite_url(tmp_path / "automl.db")
    search = subprocess.Popen(
        [sys.executable, "-m", "automl", "search", "iris", "--trials", "4", "--seed", "3"]
        + ["--max-epochs", "3", "--pruner", "none", "--storage", storage]
        + ["--tracking-uri", server.url, "--out", "out"],
        cwd=tmp_path,
        env=cli_env(AUTOML_MLFLOW_PATIENCE="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: finished_trials(storage, "iris-auto") >= 1, 300, "the first trial")
        server.stop()
        _, err = search.communicate(timeout=300)
    finally:
        if search.poll() is None:
            search.kill()
        server.stop()
    assert search.returncode == 0, err[-3000:]
    study = optuna.load_study(study_name="iris-auto", storage=storage)
    assert finished_trials(storage, "iris-auto") == 4
    kept = [t for t in study.trials if t.user_attrs.get("model_path")]
    local_only = [t for t in kept if "model_artifact" not in t.user_attrs]
    assert local_only, [t.user_attrs for t in kept]  # every trial after the first
    assert "checkpoint is local only" in err

    exported = run_cli("export", "iris-auto", "--storage", storage, "--out", "x.keras",
                       cwd=tmp_path)  # fmt: skip
    assert exported.returncode == 0, exported.stderr[-3000:]
    by_trial = local_only[-1].number
    again = run_cli("export", "iris-auto", "--trial", str(by_trial), "--storage", storage,
                    "--out", "t.keras", cwd=tmp_path)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    make_input = "__import__('sklearn.datasets').datasets.load_iris().data.astype('float32')"
    assert_fresh_predictions_match(tmp_path / "t.keras", make_input, tmp_path)
