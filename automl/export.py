"""The best model out of a study: `best_model.keras`, test metrics, `summary.json`, MLflow.

Test data is touched here only, once, for the best trial's model.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl._errors import UsageError
from automl.models import load_model
from automl.record import StudyRecord, TrialRecord

if TYPE_CHECKING:
    import keras
    import optuna

    from automl.data import Dataset
    from automl.tracking import StudyTracker

logger = logging.getLogger("automl")


def best_trial_or_none(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best complete trial, or None while no trial has completed."""
    try:
        return study.best_trial
    except ValueError:  # Optuna's way of saying "no complete trial"
        return None


def best_value(study: optuna.Study) -> float | None:
    """The best complete trial's value, or None while no trial has completed."""
    best = best_trial_or_none(study)
    return None if best is None else float(best.value)


def best_checkpoint(study: optuna.Study) -> tuple[optuna.trial.FrozenTrial, Path]:
    """The best trial and the path of its saved model.

    Raises:
        UsageError: When no trial completed or its checkpoint is gone.
    """
    best = best_trial_or_none(study)
    if best is None:
        raise UsageError(
            f"study {study.study_name!r} has no complete trial yet; run `automl search` first."
        )
    record = TrialRecord.read(best)
    if record.model_file is None:
        raise UsageError(
            f"the model of best trial {best.number} is missing ({record.model_path or ''}); "
            f"rerun the search with the same {{study}} and {{out}} to train a new best."
        )
    return best, record.model_file


def copy_best_model(study: optuna.Study, target: Path) -> Path:
    """Write the best model again to `target` (a `.keras` file or a folder)."""
    _, path = best_checkpoint(study)
    if target.suffix != ".keras":
        target = target / "best_model.keras"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    return target


def test_metrics(model: keras.Model, data: Dataset) -> dict[str, float]:
    """Score `model` (which takes raw data) on the test split with scikit-learn's metrics.

    Classification: accuracy, macro F1, ROC AUC (one-vs-rest macro for several
    classes), log loss; regression: R², RMSE, MAE. Empty without a test split.
    """
    import numpy as np
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        log_loss,
        mean_absolute_error,
        r2_score,
        roc_auc_score,
        root_mean_squared_error,
    )

    from automl.data._encoding import model_input

    if len(data.x_test) == 0:
        return {}
    stream = getattr(data.encoder, "batches", None)  # images decoded batch by batch
    inputs = stream(data.x_test, None, 256) if stream else model_input(data.x_test, model)
    output = model.predict(inputs, verbose=0, **({} if stream else {"batch_size": 512}))
    if data.task == "regression":
        predicted = output.reshape(-1)
        return {
            "r2": float(r2_score(data.y_test, predicted)),
            "rmse": float(root_mean_squared_error(data.y_test, predicted)),
            "mae": float(mean_absolute_error(data.y_test, predicted)),
        }
    predicted = np.argmax(output, axis=-1)
    labels = list(range(data.num_classes))
    metrics = {
        "accuracy": float(accuracy_score(data.y_test, predicted)),
        "f1_macro": float(f1_score(data.y_test, predicted, average="macro")),
        "log_loss": float(log_loss(data.y_test, output, labels=labels)),
    }
    if len(np.unique(data.y_test)) == data.num_classes:  # AUC needs every class present
        probabilities = output / output.sum(axis=-1, keepdims=True)
        metrics["auc"] = float(
            roc_auc_score(data.y_test, probabilities[:, 1])
            if data.num_classes == 2
            else roc_auc_score(data.y_test, probabilities, multi_class="ovr", labels=labels)
        )
    return metrics


def export_best(
    study: optuna.Study,
    data: Dataset,
    out: Path,
    tracker: StudyTracker,
    extra: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], keras.Model | None]:
    """Export the best model, score it on test once, and write `summary.json` (with the
    `extra` facts of this run: its plan and spend).

    Returns:
        The summary and the loaded best model (None if no trial completed).
    """
    summary = {**summarize(study), **(extra or {})}
    model = None
    if summary["best"] is not None:
        best, checkpoint = best_checkpoint(study)
        model = load_model(checkpoint)
        target = out / "best_model.keras"
        shutil.copyfile(checkpoint, target)
        metrics = test_metrics(model, data)
        summary["test"] = {"metrics": metrics}
        summary["model_path"] = str(target.resolve())
        tracker.log_metrics(tracker.parent_run_id, {f"test_{k}": v for k, v in metrics.items()})
        tracker.log_metrics(tracker.parent_run_id, {"best_val_metric": best.value})
    write_json(out / "summary.json", summary)
    return summary, model


def summarize(study: optuna.Study) -> dict[str, Any]:
    """The machine-readable summary of a study (without test metrics)."""
    record = StudyRecord.of(study)
    counts = {"complete": 0, "pruned": 0, "failed": 0, "running": 0}
    names = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running"}
    for trial in study.get_trials(deepcopy=False):
        if trial.state.name in names:
            counts[names[trial.state.name]] += 1
    best = best_trial_or_none(study)
    best_info = None
    if best is not None:
        facts = TrialRecord.read(best)
        best_info = {
            "trial": best.number,
            "params": best.params,
            "val_metric": best.value,
            "metric": record.monitor,
            "epochs": facts.epochs,
            "seconds": facts.seconds,
        }
    return {
        "study": study.study_name,
        "dataset": record.dataset,
        "task": record.task,
        "space": record.space,
        "best": best_info,
        "test": {"metrics": {}},
        "trials": counts,
        "model_path": None,
    }


def write_json(path: Path, content: dict[str, Any]) -> None:
    """Write JSON atomically, so a killed run never leaves half a file."""
    partial = path.with_suffix(".json.tmp")
    partial.write_text(json.dumps(content, indent=2, default=str))
    partial.replace(path)
