"""automl.tracking: one MLflow parent run per study, nested trial runs, nothing left RUNNING.

Read back with a real `mlflow.MlflowClient` on the SQLite tracking database a real search
wrote (the shared iris search), plus direct checks of `StudyTracker` on its own database.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from automl.tracking import StudyTracker, library_versions
from tests.conftest import mlflow_url, sqlite_url


@pytest.fixture(scope="module")
def logged(iris_search):
    """The shared search's experiment, parent run and trial runs by trial number."""
    client = MlflowClient(iris_search.tracking_uri)
    experiment = client.get_experiment_by_name(iris_search.study_name)
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("automl.role") == "study"]
    trials = {int(r.data.tags["optuna.trial_number"]): r for r in runs if r not in parents}
    return client, experiment, parents, trials


def test_experiment_is_named_after_the_study_with_one_parent_run(iris_search, logged):
    """One experiment per study, holding exactly one parent run, the one the study recorded."""
    _, experiment, parents, _ = logged
    assert experiment.name == "iris-auto"
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.run_id == iris_search.result.study.user_attrs["mlflow_run_id"]
    assert parent.info.run_name == "iris-auto"
    assert parent.data.tags["automl.study"] == "iris-auto"
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["state"] == "COMPLETE"


def test_parent_run_params_describe_the_search(logged):
    """Dataset, space, budget, sampler, pruner, data sizes and library versions are params."""
    params = logged[2][0].data.params
    expected = {
        "dataset": "iris",
        "space": "auto",
        "sampler": "tpe",
        "pruner": "hyperband",
        "trials": "4",
        "max_epochs": "4",
        "seed": "0",
        "num_classes": "3",
        "n_train": "96",
        "n_val": "24",
        "n_test": "30",
    }
    assert expected.items() <= params.items()
    for key in (
        "version_keras",
        "version_optuna",
        "version_mlflow",
        "version_scikit-learn",
        "python",
        "storage",
    ):
        assert params[key]


def test_parent_run_has_test_metrics_of_the_best_model(iris_search, logged):
    """test_* metrics are the summary's test metrics; best_val_metric is the best value."""
    metrics = logged[2][0].data.metrics
    summary = iris_search.result.summary
    for key, value in summary["test"]["metrics"].items():
        assert metrics[f"test_{key}"] == pytest.approx(value)
    assert metrics["best_val_metric"] == pytest.approx(summary["best"]["val_metric"])


def test_trial_runs_are_nested_and_carry_params_metrics_and_state(iris_search, logged):
    """Each Optuna trial has a run `trial-<n>` under the parent with all sampled params,
    n_params, one val_accuracy point per epoch (the pruner's values), duration_s and a
    state tag equal to the Optuna state."""
    client, _, parents, trials = logged
    study = iris_search.result.study
    assert sorted(trials) == [t.number for t in study.trials]
    for trial in study.trials:
        run = trials[trial.number]
        assert run.info.run_name == f"trial-{trial.number}"
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.data.tags["state"] == trial.state.name
        assert run.info.status == {"COMPLETE": "FINISHED", "PRUNED": "FINISHED"}.get(
            trial.state.name, "FAILED"
        )
        params = run.data.params
        assert {k: params[k] for k in trial.params} == {k: str(v) for k, v in trial.params.items()}
        assert int(params["n_params"]) > 0

        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        epochs = trial.user_attrs["epochs"]
        assert sorted(m.step for m in history) == list(range(1, epochs + 1))  # epochs trained
        by_step = {m.step: m.value for m in history}
        for step, value in trial.intermediate_values.items():
            assert by_step[step] == pytest.approx(value)
        for key in ("loss", "accuracy", "val_loss"):
            assert len(client.get_metric_history(run.info.run_id, key)) == epochs
        assert run.data.metrics["duration_s"] == pytest.approx(trial.user_attrs["seconds"], abs=0.1)
        assert run.data.metrics["epochs"] == epochs
        if trial.state.name == "PRUNED":
            assert int(run.data.tags["pruned_at_epoch"]) == epochs


def test_no_run_is_left_running(logged):
    """After the search every run is closed."""
    _, experiment, parents, trials = logged
    runs = [*parents, *trials.values()]
    assert runs and all(r.info.status != "RUNNING" for r in runs)


def test_best_model_is_registered_as_champion_and_takes_raw_inputs(iris_search, logged):
    """The parent run outputs the best model with a signature and an input example; it is
    a version of the registered model named after the study, aliased `champion`, and
    `models:/<name>@champion` predicts like the exported model."""
    from sklearn.datasets import load_iris

    client, experiment, parents, _ = logged
    models = client.search_logged_models([experiment.experiment_id])
    assert [m.name for m in models] == ["best_model"]
    assert models[0].source_run_id == parents[0].info.run_id
    outputs = client.get_run(parents[0].info.run_id).outputs.model_outputs
    assert [o.model_id for o in outputs] == [models[0].model_id]

    best = iris_search.result.study.best_trial
    champion = client.get_model_version_by_alias("iris-auto", "champion")
    assert champion.tags["trial"] == str(best.number)
    assert float(champion.tags["value"]) == pytest.approx(best.value)
    assert champion.tags["metric"] == "val_accuracy"

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(iris_search.tracking_uri)
    try:
        model = mlflow.pyfunc.load_model("models:/iris-auto@champion")
    finally:
        mlflow.set_tracking_uri(previous)
    assert model.metadata.signature is not None
    assert model.metadata.saved_input_example_info["type"] == "ndarray"
    raw = load_iris().data.astype("float32")
    np.testing.assert_allclose(
        model.predict(raw),
        iris_search.result.best_model.predict(raw, verbose=0),
        atol=1e-5,
    )


def test_parent_run_holds_the_study_report(iris_search, logged):
    """Plots (HTML and PNG), the leaderboard, the search space and the summary are
    artifacts of the parent run under study/."""
    client, _, parents, trials = logged
    names = {a.path for a in client.list_artifacts(parents[0].info.run_id, "study")}
    for stem in ("optimization_history", "parallel_coordinate", "intermediate_values"):
        assert {f"study/{stem}.html", f"study/{stem}.png"} <= names
    assert {"study/leaderboard.csv", "study/search_space.json", "study/summary.json"} <= names
    local = client.download_artifacts(parents[0].info.run_id, "study/summary.json")
    summary = json.loads(Path(local).read_text())
    assert summary["best"] == json.loads(json.dumps(iris_search.result.summary["best"]))
    assert summary["test"]["metrics"]
    space = json.loads(
        Path(
            client.download_artifacts(parents[0].info.run_id, "study/search_space.json")
        ).read_text()
    )
    assert space["space"] == "auto" and "family" in space["params"]


def test_trial_runs_record_model_size_and_study(logged):
    """n_params is a metric too (sortable in the UI); the study name is a tag."""
    for run in logged[3].values():
        if run.data.tags["state"] != "FAIL":
            assert run.data.metrics["n_params"] > 0
        assert run.data.tags["automl.study"] == "iris-auto"


def test_library_versions_name_what_shapes_results():
    """Python, Keras, Optuna, MLflow and scikit-learn versions are always known."""
    versions = library_versions()
    for key in (
        "python",
        "version_keras",
        "version_optuna",
        "version_mlflow",
        "version_scikit-learn",
    ):
        assert versions[key]


# -- StudyTracker on its own database ---------------------------------------------------------


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory) -> str:
    return sqlite_url(tmp_path_factory.mktemp("tracker") / "mlflow.db")


def test_tracker_batches_params_and_skips_non_finite_metrics(tracking_uri):
    """Over 100 params arrive (MLflow's batch limit); NaN, inf and None metrics are skipped."""
    tracker = StudyTracker(tracking_uri, "unit-batches")
    parent = tracker.start_study(None, "unit-batches", {f"p{i}": i for i in range(250)})
    tracker.log_metrics(parent, {"ok": 1.5, "nan": math.nan, "inf": math.inf, "none": None}, step=3)
    tracker.end_run(parent, "COMPLETE")
    run = MlflowClient(tracking_uri).get_run(parent)
    assert len(run.data.params) == 250 and run.data.params["p249"] == "249"
    assert run.data.metrics == {"ok": 1.5}
    assert MlflowClient(tracking_uri).get_metric_history(parent, "ok")[0].step == 3


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("COMPLETE", "FINISHED"),
        ("PRUNED", "FINISHED"),
        ("FAIL", "FAILED"),
        ("INTERRUPTED", "KILLED"),
    ],
)
def test_end_run_maps_states_to_statuses_and_tags(tracking_uri, state, status):
    """end_run closes a run with the MLflow status for its end state and tags the state."""
    tracker = StudyTracker(tracking_uri, f"unit-{state}")
    parent = tracker.start_study(None, "s", {})
    trial = tracker.start_trial(0, "s")
    tracker.end_run(trial, state, {"reason": "why"})
    tracker.end_run(parent, "COMPLETE")
    run = MlflowClient(tracking_uri).get_run(trial)
    assert run.info.status == status
    assert run.data.tags["state"] == state and run.data.tags["reason"] == "why"
    assert run.data.tags["mlflow.parentRunId"] == parent


def test_start_study_reopens_the_parent_run_on_resume(tracking_uri):
    """A known run id is reopened (RUNNING again, same id); an unknown one starts a new run."""
    tracker = StudyTracker(tracking_uri, "unit-resume")
    first = tracker.start_study(None, "r", {"trials": 2})
    tracker.end_run(first, "COMPLETE")
    again = StudyTracker(tracking_uri, "unit-resume")
    assert again.experiment_id == tracker.experiment_id
    assert again.start_study(first, "r", {"trials": 4}) == first
    assert MlflowClient(tracking_uri).get_run(first).info.status == "RUNNING"
    again.end_run(first, "COMPLETE")
    fresh = again.start_study("0123456789abcdef0123456789abcdef", "r", {"trials": 4})
    assert fresh != first
    again.end_run(fresh, "COMPLETE")


def test_champion_moves_only_to_a_better_model(tracking_uri, tmp_path):
    """Every published model is a new version; `champion` follows the best value only."""
    import keras

    tracker = StudyTracker(tracking_uri, "unit-registry")
    parent = tracker.start_study(None, "unit-registry", {})
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    saved = tmp_path / "model.keras"
    model.save(saved)
    example = np.zeros((2, 4), dtype="float32")
    for trial, value in enumerate([0.5, 0.4, 0.7]):
        copy = tmp_path / f"trial-{trial}.keras"
        copy.write_bytes(saved.read_bytes())
        facts = {"trial": trial, "value": value, "metric": "val_accuracy", "direction": "maximize"}
        tracker.publish_model(copy, example, "unit-registry", facts)
        assert not copy.exists()  # the upload copy is removed once delivered
        champion = MlflowClient(tracking_uri).get_model_version_by_alias(
            "unit-registry", "champion"
        )
        assert champion.tags["trial"] == str({0: 0, 1: 0, 2: 2}[trial])
    tracker.end_run(parent, "COMPLETE")
    versions = MlflowClient(tracking_uri).search_model_versions("name='unit-registry'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3]


@pytest.mark.slow
def test_long_searches_refresh_the_report_and_the_champion(tmp_path, monkeypatch):
    """With AUTOML_REPORT_EVERY=0 the report and the champion follow every trial: each new
    best during the search became a registered version."""
    import automl

    monkeypatch.setenv("AUTOML_REPORT_EVERY", "0")
    tracking = mlflow_url(tmp_path / "mlflow.db")
    result = automl.search(
        "iris",
        storage=sqlite_url(tmp_path / "automl.db"),
        tracking_uri=tracking,
        out=tmp_path / "out",
        trials=3,
        max_epochs=2,
        pruner="none",
        study="refresh",
    )
    values = [t.value for t in result.study.trials]
    new_bests = [n for n, v in enumerate(values) if v > max(values[:n], default=-1)]
    versions = MlflowClient(tracking).search_model_versions("name='refresh'")
    assert sorted(int(v.tags["trial"]) for v in versions) == new_bests
    champion = MlflowClient(tracking).get_model_version_by_alias("refresh", "champion")
    assert champion.tags["trial"] == str(result.study.best_trial.number)
