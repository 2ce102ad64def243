"""automl.AutoClassifier / AutoRegressor inside scikit-learn's own tools."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_iris
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from automl import AutoClassifier, AutoRegressor, UsageError

FAST = {"space": "mlp", "trials": 2, "max_epochs": 10, "pruner": "none"}


@pytest.mark.slow  # keeps the default suite under 15 minutes on 2 cores
def test_classifier_passes_cross_val_score():
    """cross_val_score clones, fits and scores the estimator on each of 3 folds."""
    x, y = load_iris(return_X_y=True)
    scores = cross_val_score(AutoClassifier(**FAST), x, y, cv=3)
    assert scores.shape == (3,)
    # Folds score 0.74/0.84/0.86 here (mean 0.81; chance 0.33): 0.65 for fold noise.
    assert scores.mean() > 0.65, scores


def test_classifier_in_a_pipeline_with_string_labels():
    """Inside a Pipeline, with string labels: predict returns labels, predict_proba follows
    classes_, score is accuracy; the fitted state ends in an underscore."""
    x, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    pipe = make_pipeline(StandardScaler(), AutoClassifier(**FAST)).fit(x, names)
    model = pipe[-1]
    assert list(model.classes_) == ["setosa", "versicolor", "virginica"]
    assert set(pipe.predict(x[:10])) <= set(model.classes_)
    proba = pipe.predict_proba(x[:5])
    assert proba.shape == (5, 3) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    # 0.833 on the 150 rows here (chance 0.33): 0.70 leaves room for noise.
    assert pipe.score(x, names) > 0.70
    assert model.best_params_ == model.study_.best_trial.params
    assert model.best_score_ == model.study_.best_value
    # Validation accuracy 0.833 here (chance 0.33): 0.70 leaves room for noise.
    assert model.best_score_ > 0.70
    assert len(model.study_.trials) == 2  # kept in memory after the temporary folder is gone


@pytest.mark.slow  # 20-50 s on a loaded day: beyond the default suite's 15 minutes
def test_regressor_fits_and_scores_r2():
    """AutoRegressor searches a regression head (val MSE) and scores with R^2."""
    x, y = load_diabetes(return_X_y=True)
    model = AutoRegressor(**{**FAST, "max_epochs": 30}).fit(x, y)
    predicted = model.predict(x[:7])
    assert predicted.shape == (7,)
    # R² 0.465 here (a constant scores 0, least squares 0.52): 0.35 leaves room for noise.
    assert model.score(x, y) > 0.35
    assert model.study_.direction.name == "MINIMIZE"


def test_clone_keeps_only_the_constructor_arguments():
    """scikit-learn's contract: get_params round-trips, clone drops fitted state."""
    est = AutoClassifier(space="mlp", trials=3, seed=7)
    assert est.get_params()["trials"] == 3 and est.get_params()["seed"] == 7
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    assert not hasattr(copy, "best_model_")


def test_estimator_errors():
    """Unfitted predict, NaN input and a single class fail with clear messages."""
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        AutoClassifier().predict(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        AutoClassifier(**FAST).fit(np.full((20, 2), np.nan), np.arange(20) % 2)
    with pytest.raises(UsageError, match="at least 2 classes"):
        AutoClassifier(**FAST).fit(np.zeros((20, 2)), np.zeros(20))
