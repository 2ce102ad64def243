"""Scores of a model's predictions, with scikit-learn's metrics: the test report, and the
validation scores that choose between the best model, an ensemble and test-time
augmentation.

Predictions are what the exported models output: class probabilities, or one value per
row for regression.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# An objective's metric -> the key of `scores` that ranks like it (the same direction:
# MSE and RMSE order models alike; a regression loss is taken as MSE).
_RANKS_LIKE = {
    "classification": {"accuracy": "accuracy", "f1": "f1_macro", "auc": "auc", "loss": "log_loss"},
    "regression": {"rmse": "rmse", "mse": "rmse", "loss": "rmse", "mae": "mae", "r2": "r2"},
}
# Scores of `scores` where lower is better (the others: higher).
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})


def scores(y: np.ndarray, output: np.ndarray, task: str, num_classes: int) -> dict[str, float]:
    """Classification: accuracy, macro F1, ROC AUC (one-vs-rest macro for several
    classes; only when every class is present), log loss. Regression: R², RMSE, MAE."""
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        log_loss,
        mean_absolute_error,
        r2_score,
        roc_auc_score,
        root_mean_squared_error,
    )

    if task == "regression":
        predicted = output.reshape(-1)
        return {
            "r2": float(r2_score(y, predicted)),
            "rmse": float(root_mean_squared_error(y, predicted)),
            "mae": float(mean_absolute_error(y, predicted)),
        }
    # Softmax outputs in float32 (and their weighted averages) sum to 1 only up to
    # rounding, which scikit-learn's log loss warns about.
    probabilities = np.asarray(output, dtype="float64")
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    predicted = np.argmax(probabilities, axis=-1)
    labels = list(range(num_classes))
    metrics = {
        "accuracy": float(accuracy_score(y, predicted)),
        "f1_macro": float(f1_score(y, predicted, average="macro")),
        "log_loss": float(log_loss(y, probabilities, labels=labels)),
    }
    if len(np.unique(y)) == num_classes:  # AUC needs every class present
        metrics["auc"] = float(
            roc_auc_score(y, probabilities[:, 1])
            if num_classes == 2
            else roc_auc_score(y, probabilities, multi_class="ovr", labels=labels)
        )
    return metrics


def score_key(metric: str, task: str) -> str:
    """The key of `scores` that ranks models like the objective's `metric` does."""
    return _RANKS_LIKE[task][metric]


def score_of(y: np.ndarray, output: Any, task: str, num_classes: int, metric: str) -> float:
    """The score that ranks like the objective's `metric`.

    Raises:
        KeyError: AUC, when a class is missing from `y`.
    """
    return scores(y, np.asarray(output), task, num_classes)[score_key(metric, task)]
