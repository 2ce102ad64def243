"""The trained models kept on disk: those of the best `KEPT` complete trials.

The best one is exported; together they are the candidates of the final ensemble (see
`_final`). A model is saved as soon as its trial ranks among them, so a search stopped
at any moment (Ctrl-C, SIGKILL, the deadline) leaves its best model so far on disk.

Each saved model is also uploaded to the trial's MLflow run (`automl.tracking._artifacts`),
so the finish, `export` and `refit` on any machine reach it; the local file is a cache.
An upload that fails leaves the model on this machine only, and says so.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from automl.engine._pareto import dominates, on_front
from automl.models import save_plain
from automl.objective import score
from automl.record import TrialRecord, ranked_complete, tie_loss

if TYPE_CHECKING:
    from automl.data._encoding import Encoded
    from automl.engine._trainer import TrialOutcome
    from automl.objective import Objective

logger = logging.getLogger("automl")

KEPT = 5  # ensemble candidates; CIFAR-10 CNNs are a few MB each

_COMPLETE = (optuna.trial.TrialState.COMPLETE,)


def keep_if_among_best(
    trial: optuna.Trial,
    outcome: TrialOutcome,
    encoded: Encoded,
    objective: Objective,
    folder: Path,
    *,
    upload: Callable[[Path], dict[str, str]] | None = None,
) -> None:
    """Save the trial's model when it ranks among the best `KEPT` complete trials (in a
    multi-objective study: when it is on the Pareto front), upload it, and drop the
    local models it pushes out.

    The saved model takes raw data: `encoded.wrap` puts the dataset's preprocessing
    (table columns, text vectorization) in front of the trained model.

    Args:
        trial: The running trial.
        outcome: Its training's result (the model and its value).
        encoded: The data as the trial's model saw it.
        objective: The study's metric and direction.
        folder: This machine's checkpoint folder.
        upload: Sends the saved file to the trial's MLflow run and returns where it went
            (`StudyTracker.checkpoint_uploader`); None: the model stays local.
    """
    complete = trial.study.get_trials(deepcopy=False, states=_COMPLETE)
    if objective.multi:
        keep, dropped = _front_change(trial, outcome, complete, objective)
    else:
        candidates = [*complete, trial]
        ranked = objective.ranked(candidates, lambda t: _value(t, trial, outcome), tie_loss)
        keep, dropped = any(t is trial for t in ranked[:KEPT]), ranked[KEPT:]
    if keep:
        path = (folder / f"trial-{trial.number}.keras").resolve()
        save_plain(outcome.model, path, wrap=encoded.wrap)
        TrialRecord.write(trial, model_path=str(path))
        if upload is not None:
            _upload(trial, path, upload)
    for other in dropped:
        old = TrialRecord.read(other).model_file if other is not trial else None
        if old is not None:
            old.unlink(missing_ok=True)  # another worker may have dropped it first


def _front_change(
    trial: optuna.Trial,
    outcome: TrialOutcome,
    complete: list[optuna.trial.FrozenTrial],
    objective: Objective,
) -> tuple[bool, list[optuna.trial.FrozenTrial]]:
    """A multi-objective study keeps the Pareto front's models (each is exportable with
    `--trial`): whether the trial joins it, and the trials it pushes off."""
    values = objective.values(outcome.value, TrialRecord.read(trial))
    directions = objective.directions
    joins = on_front(values, [t.values for t in complete], directions)
    return joins, [t for t in complete if dominates(values, t.values, directions)]


def _value(
    item: optuna.trial.FrozenTrial | optuna.Trial, trial: optuna.Trial, outcome: TrialOutcome
) -> float:
    return outcome.value if item is trial else score(item)  # type: ignore[arg-type]


def _upload(trial: optuna.Trial, path: Path, upload: Callable[[Path], dict[str, str]]) -> None:
    """Upload the saved model and record where it went; a failure costs the trial nothing
    but says that its model is on this machine only."""
    try:
        TrialRecord.write(trial, **upload(path))
    except Exception as exc:  # noqa: BLE001 - the trial counts whatever MLflow does
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        logger.warning(
            "trial %d: uploading its model to MLflow failed (%s); the checkpoint is local "
            "only (%s): export and refit reach it from this machine alone",
            trial.number,
            reason[:300],
            path,
        )


def kept_trials(study: optuna.Study, objective: Objective) -> list[optuna.trial.FrozenTrial]:
    """The best `KEPT` complete trials whose model this machine has or can fetch, best
    first; each copy's `model_path` names the file here (fetched into the cache from
    MLflow when another machine trained it). A model that cannot be fetched is left out,
    with a warning."""
    from automl._errors import UsageError
    from automl.tracking._artifacts import local_model

    ranked = ranked_complete(study, objective)
    found = []
    for trial in [t for t in ranked if _has_model(TrialRecord.read(t))][:KEPT]:
        try:
            path = local_model(trial)
        except UsageError as exc:
            logger.warning("trial %d left out of the final model: %s", trial.number, exc)
            continue
        if path is not None:
            here = copy.deepcopy(trial)
            here.set_user_attr(TrialRecord.MODEL_PATH, str(path))
            found.append(here)
    return found


def _has_model(record: TrialRecord) -> bool:
    return record.model_file is not None or bool(record.model_artifact)
