"""The trained models kept on disk: those of the best `KEPT` complete trials.

The best one is exported; together they are the candidates of the final ensemble (see
`_final`). A model is saved as soon as its trial ranks among them, so a search stopped
at any moment (Ctrl-C, SIGKILL, the deadline) leaves its best model so far on disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from automl.models import save_plain
from automl.record import TrialRecord

if TYPE_CHECKING:
    from automl.data._encoding import Encoded
    from automl.engine._trainer import TrialOutcome
    from automl.objective import Objective

KEPT = 5  # ensemble candidates; CIFAR-10 CNNs are a few MB each

_COMPLETE = (optuna.trial.TrialState.COMPLETE,)


def keep_if_among_best(
    trial: optuna.Trial,
    outcome: TrialOutcome,
    encoded: Encoded,
    objective: Objective,
    folder: Path,
) -> None:
    """Save the trial's model when it ranks among the best `KEPT` complete trials, and
    drop the models it pushes out.

    The saved model takes raw data: `encoded.wrap` puts the dataset's preprocessing
    (table columns, text vectorization) in front of the trained model.
    """
    complete = trial.study.get_trials(deepcopy=False, states=_COMPLETE)
    ranked = objective.ranked([*complete, trial], lambda t: _value(t, trial, outcome))
    kept, dropped = ranked[:KEPT], ranked[KEPT:]
    if any(t is trial for t in kept):
        path = (folder / f"trial-{trial.number}.keras").resolve()
        save_plain(outcome.model, path, wrap=encoded.wrap)
        TrialRecord.write(trial, model_path=str(path))
    for other in dropped:
        old = TrialRecord.read(other).model_file if other is not trial else None
        if old is not None:
            old.unlink(missing_ok=True)  # another worker may have dropped it first


def _value(
    item: optuna.trial.FrozenTrial | optuna.Trial, trial: optuna.Trial, outcome: TrialOutcome
) -> float:
    return outcome.value if item is trial else float(item.value)  # type: ignore[union-attr]


def kept_trials(study: optuna.Study, objective: Objective) -> list[optuna.trial.FrozenTrial]:
    """The complete trials whose model is on disk, best first."""
    complete = study.get_trials(deepcopy=False, states=_COMPLETE)
    with_model = [t for t in complete if TrialRecord.read(t).model_file is not None]
    return objective.ranked(with_model, lambda t: t.value)
