"""Tasks: detection and --task, metrics that follow the task, --metric objectives,
balanced class weights, and their one-line errors."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

import automl
from automl import UsageError
from automl.data import load_data
from automl.data._targets import encode_target
from automl.objective import Objective
from automl.record import StudyRecord
from automl.spaces.metrics import SparseAUC, SparseF1
from tests.conftest import mlflow_url, run_cli, sqlite_url


@pytest.mark.parametrize(
    ("y", "task", "expected"),
    [
        (np.array([0.5, 1.25, 3.0, 2.5]), None, ("regression", [])),
        (np.array(["b", "a", "b", "c"]), None, ("classification", ["a", "b", "c"])),
        (np.array([3, 1, 3, 1]), None, ("classification", ["1", "3"])),
        (np.array([3, 1, 3, 1]), "binary", ("classification", ["1", "3"])),
        (np.array([3, 1, 3, 2]), "regression", ("regression", [])),
    ],
)
def test_the_task_is_detected_or_taken_from_task(y, task, expected):
    encoded, class_names, detected = encode_target(y, task)
    assert (detected, class_names) == expected
    if detected == "classification":
        assert encoded.dtype == np.int64 and encoded.max() == len(class_names) - 1
    else:
        assert encoded.dtype == np.float32


@pytest.mark.parametrize(
    ("y", "task", "fragment"),
    [
        (np.array(["a", "a", "a"]), None, "single class \\('a' in every row\\)"),
        (np.array([0, 1, 2]), "binary", "^task binary needs exactly 2 classes.*has 3"),
        (np.array(["x", "y"]), "regression", "not numeric.*pass task multiclass"),
        (np.array([1.0, np.nan, 2.0]), None, "1 missing values \\(first at row 1\\)"),
        (np.array([0, 1]), "ranking", "^task must be one of"),
    ],
)
def test_bad_targets_get_one_line_errors(y, task, fragment):
    with pytest.raises(UsageError, match=fragment):
        encode_target(y, task)


def test_task_that_a_builtin_cannot_have_is_refused():
    with pytest.raises(UsageError, match="iris is a classification dataset; task regression"):
        load_data("iris", task="regression")
    with pytest.raises(UsageError, match="^task binary needs exactly 2 classes, but iris has 3"):
        load_data("iris", task="binary")
    assert load_data("breast_cancer", task="binary").num_classes == 2


def test_metric_must_fit_the_task():
    assert Objective.for_task("classification") == Objective("val_accuracy", "maximize")
    assert Objective.for_task("regression") == Objective("val_rmse", "minimize")
    assert Objective.for_task("regression", "r2") == Objective("val_r2", "maximize")
    assert Objective.for_task("classification", "loss") == Objective("val_loss", "minimize")
    with pytest.raises(UsageError, match="^metric auc does not apply to regression.*rmse"):
        Objective.for_task("regression", "auc")


@pytest.mark.parametrize("classes", [2, 4])
def test_auc_and_f1_on_integer_labels_agree_with_scikit_learn(classes):
    rng = np.random.default_rng(classes)
    y = rng.integers(0, classes, 400)
    p = rng.random((400, classes))
    p[np.arange(400), y] += 0.4
    p /= p.sum(axis=1, keepdims=True)
    auc, f1 = SparseAUC(classes), SparseF1(classes)
    for start in range(0, 400, 128):  # batch by batch, as in training
        auc.update_state(y[start : start + 128], p[start : start + 128])
        f1.update_state(y[start : start + 128], p[start : start + 128])
    expected_auc = (
        roc_auc_score(y, p[:, 1]) if classes == 2 else roc_auc_score(y, p, multi_class="ovr")
    )
    assert float(auc.result()) == pytest.approx(expected_auc, abs=0.01)
    assert float(f1.result()) == pytest.approx(f1_score(y, p.argmax(1), average="macro"), abs=1e-4)


def _search(tmp_path, dataset, **options):
    options = {"trials": 2, "max_epochs": 2, "space": "mlp", "tracking_uri": None, **options}
    return automl.search(
        dataset,
        storage=sqlite_url(tmp_path / "automl.db"),
        out=tmp_path / "out",
        **options,
    )


@pytest.mark.slow  # keeps the default suite under 15 minutes on 2 cores
def test_metric_and_balanced_class_weights_drive_a_search(tmp_path):
    """--metric auc scores trials on val_auc (kept on resume); --class-weight balanced runs;
    a resumed study refuses another metric."""
    result = _search(tmp_path, "breast_cancer", metric="auc", class_weight="balanced")
    study = result.study
    assert StudyRecord.of(study).monitor == "val_auc"
    assert result.summary["best"]["metric"] == "val_auc"
    # Validation AUC 0.998 here (chance 0.5): 0.95 leaves room for noise.
    assert study.best_value > 0.95
    assert {"accuracy", "auc", "f1_macro"} <= set(result.summary["test"]["metrics"])
    with pytest.raises(UsageError, match="scores trials on val_auc, not val_f1"):
        _search(tmp_path, "breast_cancer", metric="f1", trials=3)
    resumed = _search(tmp_path, "breast_cancer", trials=3)  # no --metric: keeps val_auc
    assert resumed.summary["best"]["metric"] == "val_auc" and len(resumed.study.trials) == 3


@pytest.mark.slow
def test_regression_logs_rmse_mae_r2_and_can_maximize_r2(tmp_path):
    """--metric r2 maximizes; MLflow gets each trial's per-epoch val_r2 and val_rmse and
    the study run's test R², RMSE and MAE, the same numbers as summary.json."""
    tracking = mlflow_url(tmp_path / "mlflow.db")
    result = _search(tmp_path, "diabetes", metric="r2", tracking_uri=tracking)
    assert result.study.direction.name == "MAXIMIZE"
    assert result.summary["best"]["metric"] == "val_r2"
    trial = result.study.best_trial
    assert trial.value == result.summary["best"]["val_metric"]
    test_metrics = result.summary["test"]["metrics"]
    assert {"r2", "rmse", "mae"} == set(test_metrics)

    client = mlflow.MlflowClient(tracking)
    experiment = client.get_experiment_by_name("diabetes-mlp")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    logged = runs["diabetes-mlp"].data.metrics
    for name, value in test_metrics.items():
        assert logged[f"test_{name}"] == pytest.approx(value)
    best_run = runs[f"trial-{trial.number}"]
    for name in ("val_r2", "val_rmse", "rmse", "loss"):
        history = client.get_metric_history(best_run.info.run_id, name)
        assert len(history) == trial.user_attrs["epochs"], name
    r2_curve = [m.value for m in client.get_metric_history(best_run.info.run_id, "val_r2")]
    assert trial.value == pytest.approx(max(r2_curve))
    with pytest.raises(UsageError, match="^class_weight applies to classification only"):
        _search(tmp_path, "diabetes", class_weight="balanced", study="other")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["iris", "--task", "ranking"], "--task must be one of"),
        (["iris", "--metric", "precision"], "unknown metric 'precision'"),
        (["iris", "--class-weight", "auto"], "--class-weight must be 'balanced'"),
        (["missing.csv", "--target", "y"], "no such file or folder: missing.csv"),
        (["table.csv"], "table.csv is a table: pass --target COLUMN"),
        (["notes.txt"], "cannot read .txt files"),
        (["iris", "--text-column", "text"], "--text-column needs a table"),
    ],
)
def test_cli_data_and_task_mistakes_exit_2(tmp_path, argv, fragment):
    (tmp_path / "table.csv").write_text("a,y\n1,0\n")
    (tmp_path / "notes.txt").write_text("hello\n")
    done = run_cli("search", *argv, "--trials", "1", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert fragment in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "automl.db").exists()
