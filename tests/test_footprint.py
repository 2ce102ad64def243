"""Size and latency of every trial's model (automl/footprint.py), and `--max-params` /
`--max-latency-ms` (automl/engine/_limits.py): measured after build, before any training,
logged to MLflow, shown by `automl show`; a model over a limit is rejected untrained, and
Optuna's sampler learns the limit through its constraints."""

from __future__ import annotations

from pathlib import Path

import keras
import mlflow
import numpy as np
import optuna
import pytest

import automl
from automl._errors import UsageError
from automl.engine._limits import Limits
from automl.footprint import Footprint, measure_footprint
from tests.conftest import mlflow_url, run_cli, sqlite_url
from tests.test_cli import _files_in, _without_tensorflow_banner, assert_usage_error


def _mlp(units: int) -> keras.Model:
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(units, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))


def test_footprint_is_the_models_own(tmp_path: Path) -> None:
    model = _mlp(64)
    footprint = measure_footprint(model, np.zeros((1, 4), "float32"))
    model.save(tmp_path / "same.keras")
    assert footprint.n_params == model.count_params() == 4 * 64 + 64 + 64 * 3 + 3
    assert footprint.size_mb == pytest.approx((tmp_path / "same.keras").stat().st_size / 1e6)
    assert footprint.latency_ms is not None and 0 < footprint.latency_ms < 1000
    unusable = measure_footprint(model, np.zeros((1, 7), "float32"))  # wrong input width
    assert unusable.latency_ms is None and unusable.facts().keys() == {"n_params", "size_mb"}


def test_limits_say_why_and_how_far() -> None:
    limits = Limits(max_params=1000, max_latency_ms=2.0)
    big_and_slow = Footprint(n_params=3000, size_mb=0.01, latency_ms=3.0)
    assert limits.reason(big_and_slow) == (
        "3,000 parameters, over the limit of 1,000; 3.00 ms per example, over the limit of 2"
    )
    assert limits.reason(Footprint(n_params=1000, size_mb=None, latency_ms=None)) is None
    trial = optuna.trial.create_trial(
        params={}, distributions={}, value=0.5, user_attrs={"n_params": 3000, "latency_ms": 1.0}
    )
    assert limits.violations(trial) == (2.0, 0.0)  # twice over; within
    unbuilt = optuna.trial.create_trial(params={}, distributions={}, value=0.5)
    assert Limits(max_params=10).violations(unbuilt) == (0.0,)
    assert not Limits().active


@pytest.mark.slow  # keeps the default suite under 15 minutes on 2 cores
def test_max_params_rejects_before_training_and_tpe_learns_it(tmp_path: Path) -> None:
    """Over the limit: no epoch, FAIL for people (reason, MLflow, show, summary), PRUNED
    with constraint values for Optuna; every trial's run has its size and latency."""
    folder = tmp_path / "run"
    folder.mkdir()
    done = run_cli(
        "search", "iris", "--trials", "6", "--max-epochs", "2", "--max-params", "2000",
        *_files_in(folder), cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="iris-auto", storage=sqlite_url(folder / "automl.db"))
    rejected = [t for t in study.trials if t.user_attrs.get("infeasible")]
    kept = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert rejected and kept, [t.user_attrs.get("reason") for t in study.trials]
    for trial in rejected:
        assert trial.state.name == "PRUNED" and not trial.intermediate_values
        assert trial.user_attrs["n_params"] > 2000
        assert trial.user_attrs["reason"].startswith("rejected: ")
        assert "over the limit of 2,000" in trial.user_attrs["reason"]
        assert trial.system_attrs["constraints"][0] > 0  # what TPE sees
    for trial in kept:
        assert trial.user_attrs["n_params"] <= 2000
        assert trial.system_attrs["constraints"] == (0.0,) or trial.system_attrs["constraints"] == [
            0.0
        ]
    mlflow.set_tracking_uri(mlflow_url(folder / "mlflow.db"))
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    trial_runs = {r.info.run_name: r for r in runs if r.info.run_name.startswith("trial-")}
    assert len(trial_runs) == len(study.trials)
    for trial in study.trials:
        run = trial_runs[f"trial-{trial.number}"]
        assert {"n_params", "size_mb", "latency_ms"} <= run.data.metrics.keys()
        expected = "FAILED" if trial.user_attrs.get("infeasible") else "FINISHED"
        assert run.info.status == expected
    shown = run_cli("show", "iris-auto", "--storage", sqlite_url(folder / "automl.db"), cwd=folder)
    assert "ms/example" in shown.stdout and "rejected: " in shown.stdout
    assert "FAIL" in shown.stdout


@pytest.mark.slow  # 15-25 s: beyond the default suite's 15 minutes
def test_a_limit_no_model_meets_stops_the_search_early(tmp_path: Path) -> None:
    done = run_cli(
        "search", "iris", "--trials", "40", "--max-epochs", "2", "--max-params", "5",
        *_files_in(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    stderr = _without_tensorflow_banner(done.stderr)
    (line,) = stderr.strip().splitlines()  # the trials before it are on stdout
    assert line.startswith("automl: error: the first 10 models of the space all broke")
    assert "(the smallest: 210 parameters, over the limit of 5)" in line
    assert "raise --max-params" in line
    study = optuna.load_study(study_name="iris-auto", storage=sqlite_url(tmp_path / "automl.db"))
    assert len(study.trials) == 10 and all(t.user_attrs["infeasible"] for t in study.trials)
    mlflow.set_tracking_uri(mlflow_url(tmp_path / "mlflow.db"))
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert runs and all(r.info.status != "RUNNING" for r in runs)


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--max-params", "0"], "--max-params must be at least 1, but got 0"),
        (["--max-params", "-3"], "--max-params must be at least 1"),
        (["--max-params", "lots"], "--max-params: invalid int value: 'lots'"),
        (["--max-latency-ms", "0"], "--max-latency-ms must be a positive number"),
        (["--max-latency-ms", "fast"], "--max-latency-ms: invalid float value"),
    ],
)
def test_bad_limits_are_usage_errors(tmp_path: Path, flags: list[str], fragment: str) -> None:
    done = run_cli("search", "iris", "--trials", "1", *flags, *_files_in(tmp_path), cwd=tmp_path)
    assert_usage_error(done, fragment)
    assert not (tmp_path / "automl.db").exists()


def test_python_api_takes_the_latency_limit(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="max_latency_ms must be a positive number"):
        automl.search("iris", trials=1, max_latency_ms=-1.0, tracking_uri="none")
    result = automl.search(
        "iris",
        trials=3,
        max_epochs=1,
        max_latency_ms=1e-6,  # no model is that fast, yet 3 trials stop before 10
        storage=sqlite_url(tmp_path / "automl.db"),
        tracking_uri="none",
        out=tmp_path / "out",
    )
    assert all(t.user_attrs["infeasible"] for t in result.study.trials)
    assert all(
        "ms per example, over the limit" in t.user_attrs["reason"] for t in result.study.trials
    )
    assert result.summary["trials"]["failed"] == 3 and result.summary["best"] is None
