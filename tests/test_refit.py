"""`automl refit`: the best trial retrained on train + validation, from what the study
recorded (params, seed, best epoch), scored next to the trial's own model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import load_iris

from automl.models import load_model
from tests.conftest import run_cli


@pytest.mark.slow
def test_refit_reproduces_the_best_trial_and_exports_it(iris_search, tmp_path):
    out = tmp_path / "refit"
    result = run_cli(
        "refit", "iris-auto", "--storage", iris_search.storage, "--out", out, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    best = iris_search.result.study.best_trial
    assert f"refit trial {best.number} (seed {best.user_attrs['seed']}" in result.stdout
    report = json.loads((out / "refit.json").read_text())
    assert report["params"] == best.params
    assert report["epochs"] == best.user_attrs["best_epoch"]
    trial_accuracy = iris_search.result.summary["test"]["metrics"]["accuracy"]
    assert report["trial_test"]["accuracy"] == trial_accuracy
    # Same params, seed and epochs, a quarter more rows: the score holds within noise
    # (30 test rows: one row is 0.033).
    assert abs(report["test"]["accuracy"] - trial_accuracy) <= 0.1
    model = load_model(out / "refit_model.keras")
    probabilities = model.predict(load_iris().data.astype("float32"), verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)


def test_refit_of_an_unknown_study_lists_those_there(iris_search, tmp_path):
    result = run_cli("refit", "nope", "--storage", iris_search.storage, cwd=tmp_path)
    assert result.returncode == 2
    assert "no study 'nope'" in result.stderr and "iris-auto" in result.stderr
