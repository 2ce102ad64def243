"""Multi-fidelity by data: trials on a stratified subset, the best promoted to all of it.

With `--subset F`, every trial trains on a fixed, stratified fraction F of the training
split (validation stays whole, so scores compare), which makes a trial about 1/F times
cheaper. Once `PROMOTE_AFTER` subset trials completed, whenever the best of them has
not been promoted yet, its parameters are enqueued once as a full-data trial
(`promoted_from`), which runs next, is never pruned, and does not report to the pruner
(its full-data curve would make every subset trial look bad).
"""

from __future__ import annotations

import numpy as np
import optuna

from automl.objective import Objective, score
from automl.record import TrialRecord

PROMOTE_AFTER = 3


def subset_indices(y: np.ndarray, fraction: float, seed: int | None, stratify: bool) -> np.ndarray:
    """Sorted row indices of a fixed, stratified `fraction` of the training split."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    taken, _ = train_test_split(
        rows, train_size=fraction, stratify=y if stratify else None, random_state=seed or 0
    )
    return np.sort(taken)


def is_promoted(trial: optuna.trial.BaseTrial | optuna.trial.FrozenTrial) -> bool:
    """Whether the trial trains at full fidelity whatever exploration's is: a full-data
    rerun of a subset trial, or a long training (see `_phases`), which may be a starting
    point trained long at once."""
    facts = TrialRecord.read(trial)
    return facts.promoted_from is not None or facts.exploit


def promote_best(study: optuna.Study) -> int | None:
    """Enqueue the best subset trial's params on all the data, once, if it is time.

    It is time once `PROMOTE_AFTER` subset trials completed, when the best of them has
    not been promoted yet and no promotion is waiting to run.

    Returns:
        The promoted trial's number, or None when nothing was promoted.
    """
    trials = study.get_trials(deepcopy=False)
    subset = [
        t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and not is_promoted(t)
    ]
    if len(subset) < PROMOTE_AFTER:
        return None
    best = Objective.of_study(study).best_of(subset, score)
    promoted = {TrialRecord.read(t).promoted_from for t in trials}
    waiting = any(t.state == optuna.trial.TrialState.WAITING for t in trials)
    if best.number in promoted or waiting:
        return None
    study.enqueue_trial(best.params, user_attrs=TrialRecord.attrs(promoted_from=best.number))
    return best.number
