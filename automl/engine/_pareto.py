"""Multi-objective studies (`--objectives`): the Pareto front, and pruning that works.

Optuna cannot prune a multi-objective study (`Trial.report` raises there). automl can,
because every objective but the validation metric is a cost of the model that is known
before training (`automl.footprint`). The rule (`ParetoPruning`), as the README states it:

    After epoch k, which is not its last, a trial stops when a complete trial had, after
    its own epoch k, a strictly better validation value and no larger value in any
    cost. That trial dominates it at equal training: this one could at best join the
    front by catching up later, which is what the rule bets against.

Starting points, promoted and long (exploit) trainings are never stopped. Each trial
keeps its validation curve (`TrialRecord.curve`) for the trials after it to compare with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras
import optuna

from automl.record import TrialRecord

if TYPE_CHECKING:
    from automl.objective import Objective

_COMPLETE = (optuna.trial.TrialState.COMPLETE,)


def dominates(first: Sequence[float], second: Sequence[float], directions: Sequence[str]) -> bool:
    """Whether objective values `first` Pareto-dominate `second`: no worse in any, better
    in at least one (directions as Optuna's: "maximize" or "minimize")."""
    signs = [1.0 if d == "maximize" else -1.0 for d in directions]
    gains = [sign * (a - b) for sign, a, b in zip(signs, first, second, strict=True)]
    return all(g >= 0 for g in gains) and any(g > 0 for g in gains)


def on_front(
    values: Sequence[float], others: Sequence[Sequence[float]], directions: Sequence[str]
) -> bool:
    """Whether `values` is on the front of `others` (no other dominates it)."""
    return not any(dominates(other, values, directions) for other in others)


def dominating_trial(
    study: optuna.Study, epoch: int, value: float, costs: Sequence[float], objective: Objective
) -> optuna.trial.FrozenTrial | None:
    """A complete trial that beat `value` after its own epoch `epoch` (1-based) at no
    larger cost, or None."""
    for other in study.get_trials(deepcopy=False, states=_COMPLETE):
        curve = TrialRecord.read(other).curve or []
        seen = curve[epoch - 1] if len(curve) >= epoch else None
        if seen is None or not objective.is_better(seen, value):
            continue
        if all(theirs <= mine for theirs, mine in zip(other.values[1:], costs, strict=True)):
            return other
    return None


class ParetoPruning(keras.callbacks.Callback):
    """Keeps the trial's validation curve and stops it when it is dominated (see above).

    Args:
        trial: The running trial.
        objective: The study's objectives.
        costs: The trial's model's costs, in the order of `objective.costs`.
        max_epochs: The trial's epoch cap (its last epoch is never cut).
        protected: Keep the curve, never stop.
        silent: Neither keep the curve nor stop (a promoted full-data trial).
    """

    def __init__(
        self,
        trial: optuna.Trial,
        objective: Objective,
        costs: Sequence[float],
        *,
        max_epochs: int,
        protected: bool = False,
        silent: bool = False,
    ) -> None:
        super().__init__()
        self.trial, self.objective, self.costs = trial, objective, tuple(costs)
        self.max_epochs, self.protected, self.silent = max_epochs, protected, silent
        self.curve: list[float | None] = []

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.curve = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.silent:
            return
        value = (logs or {}).get(self.objective.monitor)
        finite = value is not None and math.isfinite(float(value))
        self.curve.append(float(value) if finite else None)
        TrialRecord.write(self.trial, curve=list(self.curve))
        step = len(self.curve)
        if not finite or self.protected or step >= self.max_epochs:
            return
        other = dominating_trial(self.trial.study, step, float(value), self.costs, self.objective)
        if other is not None:
            raise optuna.TrialPruned(
                f"pruned after epoch {step}: trial {other.number} had "
                f"{self.objective.monitor} {(TrialRecord.read(other).curve or [])[step - 1]:.4f} "
                f"there at no larger {', '.join(self.objective.costs)}."
            )
