"""One trial: build the model from the space, fit it with callbacks, return the score.

Knows nothing of MLflow or of the study loop: it takes an epoch `report` function and
returns a `TrialOutcome`, or raises `optuna.TrialPruned` / `TrialFailed` (`SpaceFailed`
when the space itself is at fault).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import keras
import optuna

from automl._errors import TrialFailed, UsageError
from automl.engine._callbacks import Deadline, EpochReporter, TrialPruning
from automl.engine._interrupt import StopOnInterrupt
from automl.spaces import HyperParameters, ModelSpec, Space
from automl.spaces.training import compile_for_task


class SpaceFailed(TrialFailed):
    """The space raised, returned no Keras model, or built one that does not fit the task."""


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

    @classmethod
    def for_task(cls, task: str, metric: str | None = None) -> Objective:
        """The validation `metric` (default: accuracy, or RMSE for regression).

        Raises:
            UsageError: When the metric does not fit the task.
        """
        from automl.config import METRICS

        metric = metric or ("rmse" if task == "regression" else "accuracy")
        tasks, direction = METRICS[metric]
        if task not in tasks:
            fitting = [name for name, (ok, _) in METRICS.items() if task in ok]
            raise UsageError(
                f"--metric {metric} does not apply to {task}; choose one of: {', '.join(fitting)}."
            )
        return cls(f"val_{metric}", direction)

    def best(self, values: list[float]) -> tuple[float, int]:
        """Best value and its 0-based epoch."""
        pick = max if self.direction == "maximize" else min
        value = pick(values)
        return value, values.index(value)


def build_model(
    space: Space, hp: HyperParameters, spec: ModelSpec, objective: Objective | None = None
) -> keras.Model:
    """Call the space, check its model fits the task, and compile it if it is not.

    An uncompiled model gets Adam (learning rate 1e-3), the task's loss and the one
    metric the trials are scored on (so a user's `fit` that unpacks `evaluate` sees
    [loss, metric], as with a model it compiled itself).

    Raises:
        UsageError: From the space (bad ranges, missing weights): the search must stop.
        SpaceFailed: With a one-line reason when the space's result is unusable.
    """
    try:
        model = space.build(hp, spec)
    except (UsageError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise SpaceFailed(f"the space raised while building: {one_line(exc)}") from exc
    if not isinstance(model, keras.Model):
        raise SpaceFailed(f"the space returned {type(model).__name__}, not a keras.Model.")
    shape = tuple(model.outputs[0].shape) if model.outputs else None
    want = spec.output_units
    if shape is not None and (len(shape) != 2 or shape[-1] != want):
        what = f"{want} class probabilities" if spec.task == "classification" else "1 value"
        raise SpaceFailed(
            f"the model outputs shape {shape[1:]} but the {spec.task} task needs {what} per "
            f"example (shape ({want},))."
        )
    if not model.compiled:
        metric = (objective or Objective.for_task(spec.task)).monitor.removeprefix("val_")
        compile_for_task(model, keras.optimizers.Adam(1e-3), spec, only=metric)
    return model


def fit_trial(
    trial: optuna.Trial,
    model: keras.Model,
    train: tuple[Any, Any],
    validation: tuple[Any, Any],
    *,
    batch_size: int,
    max_epochs: int,
    patience: int,
    objective: Objective,
    deadline: float | None,
    report: Callable[[int, dict[str, float]], None],
    protected: bool = False,
    silent: bool = False,
    interrupted: Callable[[], bool] = lambda: False,
    hp: HyperParameters | None = None,
    custom_fit: Callable[..., Any] | None = None,
    class_weight: dict[int, float] | None = None,
    stream: Callable[..., Any] | None = None,
) -> TrialOutcome:
    """Fit with early stopping, Optuna pruning, NaN termination and the deadline.

    A `protected` trial (a space's starting point) reports to the pruner but is not pruned;
    a `silent` one does not report either.
    Callbacks the space asked for (`hp.callbacks`) run too. `custom_fit` is a keras-tuner
    `HyperModel.fit(hp, model, *args, **kwargs)` override: it gets the data, epochs,
    validation data and callbacks the way keras-tuner passes them, and may return a
    History, a dict of metrics or the objective value. `train` and `validation` are
    (x, y) pairs of model-ready (encoded) arrays, or of file paths with `stream` (see
    `Encoded.stream`), which turns them into batches decoded on the fly.

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
        TrialPruning(
            trial, objective.monitor, max_epochs=max_epochs, protected=protected, silent=silent
        ),
        keras.callbacks.EarlyStopping(
            objective.monitor, patience=patience, mode=mode, restore_best_weights=True
        ),
        deadline_cb,
        StopOnInterrupt(interrupted),
        *(hp.callbacks if hp is not None else []),
    ]
    if stream is not None:  # data decoded batch by batch: PyDatasets carry x and y
        train = (stream(*train, batch_size, shuffle=True), None)
        validation = stream(*validation, batch_size)
        batch_size = None
    fit_args = {
        "validation_data": validation,
        "epochs": max_epochs,
        "callbacks": callbacks,
        "verbose": 0,
    }
    if custom_fit is not None:
        if class_weight is not None:
            fit_args["class_weight"] = class_weight
        returned = custom_fit(hp, model, *train, **fit_args)
    else:
        model.fit(*train, batch_size=batch_size, class_weight=class_weight, **fit_args)
        returned = None
    history = reporter.history
    if reporter.went_nan:
        raise TrialFailed(f"the loss became NaN or infinite at epoch {len(history)}.")
    if history and objective.monitor not in history[0]:
        raise SpaceFailed(
            f"the model reports no {objective.monitor} (it logged {', '.join(history[0])}); "
            f"compile it with metrics=[{objective.monitor.removeprefix('val_')!r}] or leave "
            f"it uncompiled."
        )
    values = [h[objective.monitor] for h in history if objective.monitor in h]
    if not values and returned is not None:
        values = _returned_values(returned, objective.monitor)
    if not values:
        raise optuna.TrialPruned("the time budget ran out before the first epoch ended.")
    value, best_epoch = objective.best(values)
    if not math.isfinite(value):
        raise TrialFailed(f"{objective.monitor} is not finite ({value}).")
    return TrialOutcome(model=model, value=value, epochs=len(history), best_epoch=best_epoch + 1)


def _returned_values(returned: Any, monitor: str) -> list[float]:
    """Objective values from what a custom `fit` returned (History, dict or number)."""
    if isinstance(returned, keras.callbacks.History):
        return [float(v) for v in returned.history.get(monitor, [])]
    if isinstance(returned, dict):
        return [float(returned[monitor])] if monitor in returned else []
    if isinstance(returned, int | float):
        return [float(returned)]
    return []


_TF_NOISE = ("File ", "Detected at node", "Stack trace", "Node:", "Op:", "}}", "during")


def one_line(exc: BaseException) -> str:
    """A trial's failure reason: `Type: first line`, "out of memory: ..." for OOM, at most
    500 characters; a `TrialFailed` message is already a reason and stands alone."""
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    if message.endswith("Graph execution error:"):  # TensorFlow: the cause is further down
        causes = [line.split("[[")[0].strip() for line in text[1:]]
        causes = [c for c in causes if c and not c.startswith(_TF_NOISE)]
        message = f"{message} {causes[-1]}" if causes else message
    if isinstance(exc, MemoryError) or "ResourceExhausted" in type(exc).__name__:
        return f"out of memory: {message}"[:500]
    if isinstance(exc, TrialFailed):
        return message[:500]
    return f"{type(exc).__name__}: {message}"[:500]
