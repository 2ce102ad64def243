"""One trial: build the model from the space, fit it with callbacks, return the score.

Knows nothing of MLflow or of the study loop: it takes an epoch `report` function and
returns a `TrialOutcome`, or raises `optuna.TrialPruned` / `TrialFailed`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import keras
import optuna

from automl._errors import TrialFailed
from automl.data import Dataset
from automl.engine._callbacks import Deadline, EpochReporter, TrialPruning
from automl.engine._interrupt import StopOnInterrupt
from automl.spaces import HyperParameters, ModelSpec


@dataclasses.dataclass
class TrialOutcome:
    """What a finished fit leaves: the restored best model and its score."""

    model: keras.Model
    value: float
    epochs: int
    best_epoch: int


@dataclasses.dataclass(frozen=True)
class Objective:
    """The metric trials are scored on."""

    monitor: str = "val_accuracy"
    direction: str = "maximize"

    def best(self, values: list[float]) -> tuple[float, int]:
        """Best value and its 0-based epoch."""
        pick = max if self.direction == "maximize" else min
        value = pick(values)
        return value, values.index(value)


def build_model(
    build: Callable[[HyperParameters, ModelSpec], Any], hp: HyperParameters, spec: ModelSpec
) -> keras.Model:
    """Call the space and check that it returned a compiled model that fits the task.

    Raises:
        TrialFailed: With a one-line reason when the space's result is unusable.
    """
    model = build(hp, spec)
    if not isinstance(model, keras.Model):
        raise TrialFailed(f"the space returned {type(model).__name__}, not a keras.Model.")
    outputs = model.outputs[0].shape if model.outputs else None
    if outputs is not None and outputs[-1] != spec.num_classes:
        raise TrialFailed(
            f"the model outputs {outputs[-1]} values but the task has {spec.num_classes} classes."
        )
    if not model.compiled:
        raise TrialFailed("the space returned a model that is not compiled.")
    return model


def fit_trial(
    trial: optuna.Trial,
    model: keras.Model,
    data: Dataset,
    *,
    batch_size: int,
    max_epochs: int,
    patience: int,
    objective: Objective,
    deadline: float | None,
    report: Callable[[int, dict[str, float]], None],
    protected: bool = False,
    interrupted: Callable[[], bool] = lambda: False,
) -> TrialOutcome:
    """Fit with early stopping, Optuna pruning, NaN termination and the deadline.

    A `protected` trial (a space's starting point) reports to the pruner but is not pruned.

    Raises:
        optuna.TrialPruned: When the pruner stops the trial, or the deadline comes before
            the first epoch ends.
        TrialFailed: When the loss goes NaN.
    """
    mode = "max" if objective.direction == "maximize" else "min"
    reporter = EpochReporter(report)
    deadline_cb = Deadline(deadline)
    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        reporter,  # before the pruner, so a pruned epoch is still logged
        TrialPruning(trial, objective.monitor, max_epochs=max_epochs, protected=protected),
        keras.callbacks.EarlyStopping(
            objective.monitor, patience=patience, mode=mode, restore_best_weights=True
        ),
        deadline_cb,
        StopOnInterrupt(interrupted),
    ]
    model.fit(
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=max_epochs,
        batch_size=batch_size,
        callbacks=callbacks,
        verbose=0,
    )
    history = reporter.history
    if reporter.went_nan:
        raise TrialFailed(f"the loss became NaN or infinite at epoch {len(history)}.")
    values = [h[objective.monitor] for h in history if objective.monitor in h]
    if not values:
        raise optuna.TrialPruned("the time budget ran out before the first epoch ended.")
    value, best_epoch = objective.best(values)
    if not math.isfinite(value):
        raise TrialFailed(f"{objective.monitor} is not finite ({value}).")
    return TrialOutcome(model=model, value=value, epochs=len(history), best_epoch=best_epoch + 1)
