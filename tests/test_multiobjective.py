"""Multi-objective search (`--objectives`, automl/engine/_pareto.py): the validation metric
and the model's costs; pruning by the Pareto rule, which Optuna's pruners cannot do in
such a study; the front in the summary, on MLflow and in `automl show`; any front member
exportable."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest

from automl import load_model
from automl.engine._pareto import dominates, on_front
from tests.conftest import _run_search, run_cli, sqlite_url
from tests.test_cli import _files_in, assert_usage_error

MAX_MINIMIZE = ("maximize", "minimize")


def test_dominance_is_no_worse_in_all_and_better_in_one() -> None:
    assert dominates([0.9, 10], [0.8, 10], MAX_MINIMIZE)
    assert dominates([0.9, 5], [0.9, 10], MAX_MINIMIZE)
    assert not dominates([0.9, 10], [0.9, 10], MAX_MINIMIZE)  # equal: neither
    assert not dominates([0.95, 20], [0.9, 10], MAX_MINIMIZE)  # a trade-off
    assert on_front([0.95, 20], [[0.9, 10], [0.8, 30]], MAX_MINIMIZE)
    assert not on_front([0.85, 20], [[0.9, 10]], MAX_MINIMIZE)


@pytest.fixture(scope="module")
def front_search(tmp_path_factory: pytest.TempPathFactory):
    """ONE real multi-objective search on iris: accuracy against parameter count (a cost
    that does not vary between runs, unlike latency)."""
    folder = tmp_path_factory.mktemp("front")
    return _run_search(
        folder, "iris", trials=10, max_epochs=6, objectives="val_accuracy,params", seed=3
    )


@pytest.mark.slow  # 15-25 s: beyond the default suite's 15 minutes
def test_dominated_trials_are_pruned_by_the_stated_rule(front_search) -> None:
    study = front_search.result.study
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["val_accuracy", "params"]
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    pruned = [t for t in study.trials if "pruned after epoch" in t.user_attrs.get("reason", "")]
    assert pruned, [t.user_attrs.get("reason") for t in study.trials]
    for trial in pruned:  # the README's rule, checked from what the study stores
        epoch = len(trial.user_attrs["curve"])
        value = trial.user_attrs["curve"][-1]
        assert epoch < trial.user_attrs.get("planned_epochs", 6)  # never its last epoch
        assert not trial.user_attrs.get("starting_point")
        named = int(trial.user_attrs["reason"].split("trial ")[1].split(" ")[0])
        other = study.trials[named]
        assert other.state.name == "COMPLETE" and other.number < trial.number
        assert other.user_attrs["curve"][epoch - 1] > value
        assert other.values[1] <= trial.user_attrs["n_params"]
    for trial in complete:
        assert trial.values[1] == trial.user_attrs["n_params"]
        assert len(trial.user_attrs["curve"]) == trial.user_attrs["epochs"]


@pytest.mark.slow  # 15-25 s: beyond the default suite's 15 minutes
def test_the_front_is_reported_tagged_and_exportable(front_search, tmp_path: Path) -> None:
    study, summary = front_search.result.study, front_search.result.summary
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    expected = {
        t.number for t in complete if on_front(t.values, [o.values for o in complete], MAX_MINIMIZE)
    }
    front = [row["trial"] for row in summary["pareto_front"]]
    assert set(front) == expected and summary["objectives"] == ["val_accuracy", "params"]
    values = [row["val_accuracy"] for row in summary["pareto_front"]]
    assert values == sorted(values, reverse=True) and summary["best"]["trial"] == front[0]
    assert "ensemble" not in summary["final"]["description"]  # it would add to every cost
    mlflow.set_tracking_uri(front_search.tracking_uri)
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    tags = {r.info.run_name: r.data.tags.get("automl.pareto_front") for r in runs}
    for trial in complete:
        assert tags[f"trial-{trial.number}"] == ("true" if trial.number in expected else "false")
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    client = mlflow.MlflowClient()
    names = {Path(a.path).name for a in client.list_artifacts(parent.info.run_id, "study")}
    assert {"pareto_front.csv", "pareto_front.html", "pareto_front.png"} <= names
    storage = front_search.storage
    shown = run_cli("show", study.study_name, "--storage", storage, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    rows = [line.split("│") for line in shown.stdout.splitlines() if line.startswith("│")]
    starred = {int(row[1]) for row in rows if row[3].strip().endswith("*")}
    assert starred == expected
    for number in front:  # any front member exports, and predicts iris
        target = tmp_path / f"trial-{number}.keras"
        done = run_cli(
            "export", study.study_name, "--trial", number, "--out", target, "--storage", storage,
            cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        model = load_model(target)
        assert model.count_params() == study.trials[number].user_attrs["n_params"]
        probabilities = model.predict(np.zeros((2, 4), "float32"), verbose=0)
        assert probabilities.shape == (2, 3)


@pytest.mark.parametrize(
    ("objectives", "fragment"),
    [
        ("val_accuracy,speed", "--objectives must name the validation metric first"),
        ("latency_ms,val_accuracy", "then one or more of latency_ms, params, size_mb"),
        ("val_accuracy", "but got 'val_accuracy'"),
        ("val_accuracy,params --sampler cmaes", "--sampler cmaes cannot search several"),
    ],
)
def test_bad_objectives_are_usage_errors(tmp_path: Path, objectives: str, fragment: str) -> None:
    names, *flags = objectives.split()  # the objectives, then any other flags
    done = run_cli(
        "search", "iris", "--objectives", names, *flags, *_files_in(tmp_path), cwd=tmp_path
    )
    assert_usage_error(done, fragment)
    assert not (tmp_path / "automl.db").exists()


@pytest.mark.slow  # keeps the default suite under 15 minutes on 2 cores
def test_a_study_keeps_its_objectives(tmp_path: Path) -> None:
    first = run_cli(
        "search", "iris", "--trials", "1", "--max-epochs", "1", "--objectives",
        "val_accuracy,size_mb", *_files_in(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    again = run_cli(
        "search", "iris", "--trials", "2", "--max-epochs", "1", *_files_in(tmp_path),
        cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 2
    assert "optimizes val_accuracy,size_mb, not val_accuracy" in again.stderr
    study = optuna.load_study(study_name="iris-auto", storage=sqlite_url(tmp_path / "automl.db"))
    assert len(study.trials) == 1
