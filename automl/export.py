"""The best model out of a study: `best_model.keras`, test metrics, `summary.json`, MLflow.

Test data is touched here only, once, for the best trial's model. `export_study` writes
the final model, or a trial's, again in a deployment format (`automl.formats` converts).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl._errors import UsageError
from automl.formats import check_format, write_format
from automl.models import load_model, predict_raw
from automl.objective import Objective, score
from automl.record import StudyRecord, TrialRecord, ranked_complete
from automl.scoring import scores

if TYPE_CHECKING:
    import keras
    import optuna

    from automl.data import Dataset
    from automl.tracking import StudyTracker

logger = logging.getLogger("automl")


def best_trial_or_none(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best complete trial, or None while no trial has completed. In a
    multi-objective study: the Pareto front's best on the validation metric.

    Trials tied on the metric (on a small validation split, many reach an accuracy of
    1.0) go to the lowest validation loss, then the earliest: Optuna's `best_trial` is
    the earliest, often one that stopped barely trained.
    """
    if len(study.directions) > 1:
        front = study.best_trials
        return Objective.of_study(study).best_of(front, score) if front else None
    return next(iter(ranked_complete(study)), None)


def best_value(study: optuna.Study) -> float | None:
    """The best complete trial's value, or None while no trial has completed."""
    best = best_trial_or_none(study)
    return None if best is None else score(best)


def best_checkpoint(study: optuna.Study) -> tuple[optuna.trial.FrozenTrial, Path]:
    """The best trial and the path of its saved model on this machine (fetched from
    MLflow's artifact store into the cache when another machine trained it).

    Raises:
        UsageError: When no trial completed, its checkpoint is gone, or the artifact
            store holding it cannot be reached.
    """
    best = best_trial_or_none(study)
    if best is None:
        raise UsageError(
            f"study {study.study_name!r} has no complete trial yet; run `automl search` first."
        )
    path = _model_here(best)
    if path is None:
        record = TrialRecord.read(best)
        raise UsageError(
            f"the model of best trial {best.number} is missing ({record.model_path or ''}); "
            f"rerun the search with the same {{study}} and {{out}} to train a new best."
        )
    return best, path


def _model_here(trial: optuna.trial.FrozenTrial) -> Path | None:
    """The trial's model on this machine: its file, else fetched from MLflow (see
    `automl.tracking._artifacts.local_model`)."""
    from automl.tracking._artifacts import local_model

    return local_model(trial)


def export_study(
    study: optuna.Study, target: Path, *, format: str = "keras", trial: int | None = None
) -> Path:
    """Write a study's model in a deployment format (see `automl.formats.FORMATS`).

    Args:
        study: The study.
        target: A path with the format's suffix (`.keras`, `.onnx`, `.tflite`), or a
            folder for `best_model.<suffix>` (`best_model_saved_model/` for SavedModel).
        format: "keras", "saved_model", "onnx" or "litert".
        trial: Export this trial's model; None: the study's final model (an ensemble
            when one won), else its best trial's.

    Returns:
        The path written.

    Raises:
        UsageError: On an unknown format or trial, a missing converter, or a model the
            format cannot hold; nothing is written then.
    """
    check_format(format)
    source = final_model_file(study) if trial is None else trial_checkpoint(study, trial)
    return write_format(source, Path(target), format)


def final_model_file(study: optuna.Study) -> Path:
    """The study's final model: the `best_model.keras` a search wrote on this machine,
    while its `summary.json` names this study and best trial; else the best trial's
    checkpoint (fetched from MLflow when another machine trained it).

    The search's output folder is found beside this machine's checkpoints: the parent of
    the `checkpoints/` folder of any trial's recorded model that is here.
    """
    best, checkpoint = best_checkpoint(study)
    for out in _output_folders(study, checkpoint):
        final = out / "best_model.keras"
        if final.is_file() and _summary_names(out / "summary.json", study.study_name, best.number):
            return final
    return checkpoint


def _output_folders(study: optuna.Study, checkpoint: Path) -> list[Path]:
    """Output folders of this machine's searches of the study (checkpoints live in
    OUT/checkpoints), the best checkpoint's first."""
    folders = [checkpoint.parent.parent]
    for trial in study.get_trials(deepcopy=False):
        path = TrialRecord.read(trial).model_path
        out = Path(path).parent.parent if path else None
        if out is not None and out not in folders and (out / "summary.json").is_file():
            folders.append(out)
    return folders


def _summary_names(path: Path, study: str, trial: int) -> bool:
    try:
        summary = json.loads(path.read_text())
        return summary["study"] == study and summary["best"]["trial"] == trial
    except (OSError, ValueError, KeyError, TypeError):
        return False


def trial_checkpoint(study: optuna.Study, number: int) -> Path:
    """The saved model of trial `number`.

    Raises:
        UsageError: When there is no such complete trial, its model was not kept, or
            the artifact store holding it cannot be reached.
    """
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    found = trials.get(number)
    if found is None or found.state.name != "COMPLETE":
        raise UsageError(
            f"{{trial}} must name a complete trial of study {study.study_name!r}, but trial "
            f"{number} {'does not exist' if found is None else 'is ' + found.state.name}; "
            f"`automl show {study.study_name}` lists them."
        )
    path = _model_here(found)
    if path is None:
        raise UsageError(
            f"the model of trial {number} was not kept (only the best trials' are); "
            f"export the best model, or rerun the search."
        )
    return path


def test_metrics(model: keras.Model, data: Dataset) -> dict[str, float]:
    """Score `model` (which takes raw data) on the test split with scikit-learn's metrics
    (see `automl.scoring.scores`); empty without a test split."""
    if len(data.x_test) == 0:
        return {}
    output = predict_raw(model, data, data.x_test)
    return scores(data.y_test, output, data.task, data.num_classes)


def export_best(
    study: optuna.Study,
    data: Dataset,
    out: Path,
    tracker: StudyTracker,
    extra: dict[str, Any] | None = None,
    final: tuple[keras.Model | None, dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], keras.Model | None]:
    """Export the final model, score it on test once, and write `summary.json` (with the
    `extra` facts of this run: its plan and spend).

    Args:
        study: The study.
        data: Its dataset (the test split is scored here).
        out: The output folder.
        tracker: MLflow (or nothing).
        extra: More facts for the summary.
        final: The final model on raw data (an ensemble, flip test-time augmentation;
            None: the best checkpoint) and its facts for the summary.

    Returns:
        The summary and the exported model, in memory (None if no trial completed).
    """
    summary = {**summarize(study), **(extra or {})}
    model = None
    if summary["best"] is not None:
        best, checkpoint = best_checkpoint(study)
        target = out / "best_model.keras"
        model, summary["final"] = _write_final(final, best, checkpoint, target)
        metrics = test_metrics(model, data)
        summary["test"] = {"metrics": metrics}
        summary["model_path"] = str(target.resolve())
        tracker.log_metrics(tracker.parent_run_id, {f"test_{k}": v for k, v in metrics.items()})
        tracker.log_metrics(tracker.parent_run_id, {"best_val_metric": score(best)})
    write_json(out / "summary.json", summary)
    return summary, model


def _write_final(
    final: tuple[keras.Model | None, dict[str, Any]] | None,
    best: optuna.trial.FrozenTrial,
    checkpoint: Path,
    target: Path,
) -> tuple[keras.Model, dict[str, Any]]:
    """Save the final model to `target`, or copy the best checkpoint there when there is
    none or it cannot be saved (one warning says why)."""
    single = {
        "description": f"trial {best.number}",
        "members": [{"trial": best.number, "weight": 1.0}],
    }
    model, facts = final if final is not None else (None, single)
    if model is not None:
        partial = target.with_name(target.stem + ".partial.keras")
        try:
            model.save(partial)  # then renamed: a kill mid-save leaves no broken export
            partial.replace(target)
            return model, facts
        except Exception as exc:  # noqa: BLE001 - e.g. a custom space's unregistered layer
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            logger.warning(
                "%s cannot be saved as one Keras model (%s); exporting the best single "
                "model instead",
                facts.get("description", "the final model"),
                reason,
            )
            facts = {**single, "fallback": reason}
    partial = target.with_name(target.stem + ".partial.keras")
    shutil.copyfile(checkpoint, partial)
    partial.replace(target)
    return load_model(checkpoint), facts


def summarize(study: optuna.Study) -> dict[str, Any]:
    """The machine-readable summary of a study (without test metrics)."""
    record = StudyRecord.of(study)
    counts = {"complete": 0, "pruned": 0, "failed": 0, "running": 0}
    names = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running"}
    for trial in study.get_trials(deepcopy=False):
        if TrialRecord.read(trial).counts_as_failed:  # PRUNED for the sampler's sake
            counts["failed"] += 1
        elif trial.state.name in names:
            counts[names[trial.state.name]] += 1
    best = best_trial_or_none(study)
    best_info = None
    if best is not None:
        facts = TrialRecord.read(best)
        best_info = {
            "trial": best.number,
            "params": best.params,
            "val_metric": score(best),
            "metric": record.monitor,
            "epochs": facts.epochs,
            "seconds": facts.seconds,
            "n_params": facts.n_params,
            "size_mb": facts.size_mb,
            "latency_ms": facts.latency_ms,
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
