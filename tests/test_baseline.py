"""The scikit-learn yardstick (automl.baseline) on real tiny data: a generated table with
missing values and categories, review-like texts, scikit-learn's bundled sets, and one
search whose summary.json and MLflow parent run show it.
"""

from __future__ import annotations

import json
import time

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits, load_wine

import automl
from automl.baseline import ahead_by, describe, fit_baseline
from automl.data import from_arrays, load_data
from tests._texts import write_reviews
from tests.conftest import mlflow_url, sqlite_url


def _table(path, rows: int = 400, seed: int = 0):
    """A CSV whose label follows a numeric column with gaps and a text category."""
    rng = np.random.default_rng(seed)
    size = rng.normal(size=rows)
    colour = rng.choice(["red", "green", "blue"], size=rows)
    label = np.where((size > 0) ^ (colour == "red"), "yes", "no")
    size[rng.random(rows) < 0.1] = np.nan
    noise = rng.normal(size=rows)
    frame = pd.DataFrame({"size": size, "colour": colour, "noise": noise, "label": label})
    frame.to_csv(path, index=False)
    return path


def test_a_table_gets_histgradientboosting_scored_like_the_export(tmp_path):
    """HistGradientBoosting on the table's own training split, with its text column as
    categories and its gaps as missing values: every score on validation and test, in
    seconds, and the same numbers as scikit-learn's own scores of its predictions."""
    data = load_data(str(_table(tmp_path / "t.csv")), target="label")
    started = time.perf_counter()
    baseline = fit_baseline(data, "accuracy")
    assert time.perf_counter() - started < 20
    assert baseline["model"] == "HistGradientBoostingClassifier"
    assert baseline["metric"] == "accuracy"
    assert {"accuracy", "f1_macro", "log_loss", "auc"} <= set(baseline["test"])
    assert set(baseline["val"]) == set(baseline["test"])
    # The rule is an XOR of two columns: trees find it; chance is 0.5.
    assert baseline["test"]["accuracy"] >= 0.85, baseline
    assert 0 < baseline["seconds"] < 20


def test_texts_get_tf_idf_and_logistic_regression(tmp_path):
    data = load_data(
        str(write_reviews(tmp_path / "r.csv", rows=300)), target="label", text_column="text"
    )
    baseline = fit_baseline(data, "auc")
    assert baseline["model"] == "TF-IDF word 1-2-grams + LogisticRegression"
    assert baseline["metric"] == "auc"
    assert baseline["test"]["auc"] >= 0.9  # the cue words decide each label


def test_token_id_texts_and_regression_and_vectors():
    """Token-id texts are read as strings of ids; vectors get HistGradientBoosting; a
    regression metric ranks by its own score (lower RMSE is ahead)."""
    x, y = load_digits(return_X_y=True)
    tokens = from_arrays(x.astype("int32"), y, kind="text", name="digit_tokens")
    # A bag of pixel intensities (positions lost) is a weak model, but far above 0.1.
    assert fit_baseline(tokens, "accuracy")["test"]["accuracy"] > 0.2
    x, y = load_wine(return_X_y=True)
    vectors = from_arrays(x.astype("float32"), y, name="wine")
    baseline = fit_baseline(vectors, "f1")
    assert (
        baseline["model"] == "HistGradientBoostingClassifier" and baseline["metric"] == "f1_macro"
    )
    assert baseline["test"]["accuracy"] >= 0.85
    regression = from_arrays(x.astype("float32"), y.astype("float32") + 0.5, task="regression")
    fitted = fit_baseline(regression, "mse")
    assert fitted["model"] == "HistGradientBoostingRegressor" and fitted["metric"] == "rmse"
    assert ahead_by(1.0, 2.0, "rmse") == 1.0 and ahead_by(0.9, 0.95, "accuracy") < 0


def test_images_and_sequences_have_no_yardstick():
    x, y = load_digits(return_X_y=True)
    images = from_arrays((x * 16).reshape(-1, 8, 8, 1), y, kind="image")
    sequences = from_arrays(x.reshape(-1, 8, 8), y, kind="sequence")
    assert fit_baseline(images, "accuracy") is None
    assert fit_baseline(sequences, "accuracy") is None


def test_a_class_missing_from_training_still_gets_a_column():
    """Predictions have one column per class, so scores match the exported model's."""
    x, y = load_wine(return_X_y=True)
    data = from_arrays(x.astype("float32"), y, name="wine")
    rare = data.y_train == 2
    data.x_train, data.y_train = data.x_train[~rare], data.y_train[~rare]
    baseline = fit_baseline(data, "accuracy")
    assert baseline["test"]["accuracy"] < 0.8  # every wine of class 2 is missed
    assert np.isfinite(baseline["test"]["log_loss"])


def test_describe_says_how_far_the_search_is_ahead():
    baseline = {
        "model": "HistGradientBoostingClassifier",
        "seconds": 1.23,
        "metric": "accuracy",
        "val": {"accuracy": 0.8},
        "test": {"accuracy": 0.9},
    }
    assert describe(baseline, {"accuracy": 0.95}) == (
        "scikit-learn yardstick (HistGradientBoostingClassifier, 1.2 s): test accuracy "
        "0.9000; the search is ahead by 0.0500"
    )
    assert describe(baseline, {"accuracy": 0.85}).endswith("behind by 0.0500")
    assert describe(baseline, {"accuracy": 0.90001}).endswith("the search is level with it")
    assert describe({**baseline, "test": {}}, None).endswith("val accuracy 0.8000")
    auc_undefined = {**baseline, "metric": "auc", "test": {"accuracy": 0.9}}
    assert describe(auc_undefined, {"auc": 0.9}).endswith("auc undefined on these splits")


@pytest.mark.slow  # 15-25 s: beyond the default suite's 15 minutes
def test_search_shows_the_yardstick_in_summary_and_mlflow_never_exports_it(tmp_path):
    """A 1-trial table search: summary.json (and the report's copy) hold the yardstick
    with its line and how far the search is ahead; the MLflow parent run holds its
    scores and line; only the neural model is exported."""
    data = load_data(str(_table(tmp_path / "t.csv")), target="label")
    automl.search(
        "mlp",
        dataset=data,
        trials=1,
        max_epochs=2,
        storage=sqlite_url(tmp_path / "automl.db"),
        tracking_uri=mlflow_url(tmp_path / "mlflow.db"),
        out=tmp_path / "out",
        study="yardstick",
    )
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    baseline = summary["baseline"]
    assert baseline["model"] == "HistGradientBoostingClassifier" and not baseline["exported"]
    test = summary["test"]["metrics"]["accuracy"]
    assert baseline["search_ahead_by"] == pytest.approx(test - baseline["test"]["accuracy"])
    assert baseline["line"].startswith("scikit-learn yardstick (HistGradientBoosting")
    report = json.loads((tmp_path / "out" / "report" / "summary.json").read_text())
    assert report["baseline"]["line"] == baseline["line"]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.keras")) == ["best_model.keras"]
    client = mlflow.MlflowClient(mlflow_url(tmp_path / "mlflow.db"))
    experiment = client.get_experiment_by_name("yardstick")
    (parent,) = client.search_runs([experiment.experiment_id], "tags.`automl.role` = 'study'")
    assert parent.data.tags["automl.baseline"] == baseline["line"]
    assert parent.data.metrics["baseline_test_accuracy"] == pytest.approx(
        baseline["test"]["accuracy"]
    )
