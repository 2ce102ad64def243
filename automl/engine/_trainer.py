"""One trial: build the model from the space, fit it with callbacks, return the score.

Knows nothing of MLflow or of the study loop: it takes an epoch `report` function and
returns a `TrialOutcome`, or raises `optuna.TrialPruned` / `TrialFailed` (`SpaceFailed`
when the space itself is at fault).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import keras
import optuna

from automl._errors import TrialFailed, UsageError
from automl.data._batches import fit_data
from automl.engine._callbacks import (
    TIE,
    Deadline,
    EarlyStoppingOnTies,
    EpochReporter,
    ScheduleToTime,
    TrialPruning,
    best_epoch_of,
)
from automl.engine._interrupt import StopOnInterrupt
from automl.engine._pareto import ParetoPruning
from automl.spaces import HyperParameters, ModelSpec, Space
from automl.spaces.training import compile_for_task

if TYPE_CHECKING:
    from automl.objective import Objective


class SpaceFailed(TrialFailed):
    """The space raised, returned no Keras model, or built one that does not fit the task."""


class Infeasible(TrialFailed):
    """The built model breaks `--max-params` or `--max-latency-ms`: never trained."""


class Diverged(TrialFailed):
    """Training went NaN or infinite: a property of the point sampled, which the sampler
    should learn to avoid (see `teaches_the_sampler`)."""


def teaches_the_sampler(exc: BaseException) -> bool:
    """Whether a trial's failure says its point is bad (diverged, out of memory), rather
    than the space or the code being broken."""
    return isinstance(exc, Diverged | MemoryError) or "ResourceExhausted" in type(exc).__name__


@dataclasses.dataclass
class TrialOutcome:
    """What a finished fit leaves: the restored best model and its score."""

    model: keras.Model
    value: float
    epochs: int
    best_epoch: int
    val_loss: float | None = None  # at the best epoch: breaks ties on `value`


def batch_size_of(hp: HyperParameters) -> int:
    """The batch size a trial trains with: its space's `fit` keyword, its sampled
    `batch_size`, else Keras' 32."""
    return int(hp.fit_kwargs.get("batch_size", hp.values.get("batch_size", 32)))


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
        from automl.objective import Objective

        metric = (objective or Objective.for_task(spec.task)).metric
        compile_for_task(model, keras.optimizers.Adam(1e-3), spec, only=metric)
    return model


@dataclasses.dataclass(frozen=True)
class FitPlan:
    """How one trial trains.

    Attributes:
        batch_size: Examples per step.
        max_epochs: The epochs planned: its schedule spans them.
        patience: Early-stopping patience in epochs.
        objective: The metric that is monitored, and its direction.
        deadline: `time.monotonic()` at which training stops, or None.
        until: `time.monotonic()` at which the trial's time ends (its window, see
            `_phases`), to which its schedule is kept fitted (`ScheduleToTime`), or None.
        stretch_to: The most epochs it may run when they run faster than planned,
            planned to time (`ScheduleToTime`); None: `max_epochs`. A keras-tuner
            HyperModel's own `fit` gets `max_epochs`.
        fit_overhead_s: What a fit of the trial's family costs once (tracing), so that
            its first epoch's pace is checked too (`ScheduleToTime`); None: not checked.
        protected: Report to the pruner but never be pruned (a space's starting point).
        silent: Neither report nor be pruned (a promoted full-data trial).
        class_weight: Per-class loss weights, or None.
        callbacks: More Keras callbacks: the user's and the space's (`hp.callbacks`).
        costs: The model's costs in a multi-objective study (`Objective.cost_values`):
            pruning then follows `_pareto`'s rule; None: Optuna's pruner.
    """

    batch_size: int
    max_epochs: int
    patience: int
    objective: Objective
    deadline: float | None = None
    until: float | None = None
    stretch_to: int | None = None
    fit_overhead_s: float | None = None
    protected: bool = False
    silent: bool = False
    class_weight: dict[int, float] | None = None
    callbacks: tuple[keras.callbacks.Callback, ...] = ()
    costs: tuple[float, ...] | None = None


def fit_trial(
    trial: optuna.Trial,
    model: keras.Model,
    train: tuple[Any, Any],
    validation: tuple[Any, Any],
    plan: FitPlan,
    *,
    report: Callable[[int, dict[str, float]], None],
    interrupted: Callable[[], bool] = lambda: False,
    custom_fit: Callable[..., Any] | None = None,
    hp: HyperParameters | None = None,
    stream: Callable[..., Any] | None = None,
) -> TrialOutcome:
    """Fit with early stopping, Optuna pruning, NaN termination and the deadline.

    `custom_fit` is a keras-tuner `HyperModel.fit(hp, model, *args, **kwargs)` override:
    it gets the data, epochs, validation data and callbacks the way keras-tuner passes
    them, and may return a History, a dict of metrics or the objective value. `train`
    and `validation` are (x, y) pairs of model-ready (encoded) arrays, or of file paths
    with `stream` (see `Encoded.stream`), which turns them into batches decoded on the fly.

    Raises:
        optuna.TrialPruned: When the pruner stops the trial, or the deadline comes before
            the first epoch ends.
        TrialFailed: When the loss goes NaN.
    """
    reporter = EpochReporter(report)
    batch_size: int | None = plan.batch_size
    if stream is not None:  # data decoded batch by batch: PyDatasets carry x and y
        train = (stream(*train, plan.batch_size, shuffle=True), None)
        validation = stream(*validation, plan.batch_size)
        batch_size = None
    epochs = plan.max_epochs
    if custom_fit is None and plan.until is not None:  # it may stretch (`ScheduleToTime`)
        epochs = max(epochs, plan.stretch_to or epochs)
    fit_args = {
        "epochs": epochs,
        "callbacks": _callbacks(trial, plan, epochs, reporter, interrupted),
        "verbose": 0,
    }
    if custom_fit is not None:
        if plan.class_weight is not None:
            fit_args["class_weight"] = plan.class_weight
        returned = custom_fit(hp, model, *train, validation_data=validation, **fit_args)
    else:
        data = _fit_data(train, validation, batch_size)
        model.fit(**data, class_weight=plan.class_weight, **fit_args)
        returned = None
    value, best_epoch, val_loss = _score(reporter, plan.objective, returned)
    return TrialOutcome(
        model=model,
        value=value,
        epochs=len(reporter.history),
        best_epoch=best_epoch + 1,
        val_loss=val_loss,
    )


def _callbacks(
    trial: optuna.Trial,
    plan: FitPlan,
    epochs: int,
    reporter: EpochReporter,
    interrupted: Callable[[], bool],
) -> list[keras.callbacks.Callback]:
    monitor = plan.objective.monitor
    # Planned to time: its schedule is kept to it (without, fit's epochs are the plan).
    to_time = []
    if plan.until is not None:
        to_time = [
            ScheduleToTime(
                trial, plan.until, plan.max_epochs, epochs, fit_overhead_s=plan.fit_overhead_s
            )
        ]
    return [
        keras.callbacks.TerminateOnNaN(),
        reporter,  # before the pruner, so a pruned epoch is still logged
        _pruning(trial, plan),
        EarlyStoppingOnTies(
            monitor, patience=plan.patience, mode=plan.objective.mode, restore_best_weights=True
        ),
        *to_time,
        Deadline(plan.deadline),
        StopOnInterrupt(interrupted),
        *plan.callbacks,
    ]


def _pruning(trial: optuna.Trial, plan: FitPlan) -> keras.callbacks.Callback:
    """Optuna's pruner, or in a multi-objective study (which Optuna cannot prune) the
    Pareto rule."""
    if plan.costs is not None:
        return ParetoPruning(
            trial,
            plan.objective,
            plan.costs,
            max_epochs=plan.max_epochs,
            protected=plan.protected,
            silent=plan.silent,
        )
    return TrialPruning(
        trial,
        plan.objective.monitor,
        max_epochs=plan.max_epochs,
        protected=plan.protected,
        silent=plan.silent,
    )


def _fit_data(train: tuple[Any, Any], validation: Any, batch_size: int | None) -> dict[str, Any]:
    """`fit`'s data keywords: batches already made (`batch_size` None: the stream's) as
    they are, in-memory arrays as `fit_data` feeds them."""
    if batch_size is None:
        return {"x": train[0], "y": train[1], "validation_data": validation}
    return fit_data(train, validation, batch_size)


def _score(
    reporter: EpochReporter, objective: Objective, returned: Any
) -> tuple[float, int, float | None]:
    """The best epoch's value, its 0-based index and its validation loss (None where
    not logged or not finite), from the logs or what a custom `fit` returned.

    Raises:
        Diverged: A NaN loss or value. SpaceFailed: the model logs no such metric.
        optuna.TrialPruned: No epoch ended (the deadline came first).
    """
    history = reporter.history
    if reporter.went_nan:
        raise Diverged(f"the loss became NaN or infinite at epoch {len(history)}.")
    if history and objective.monitor not in history[0]:
        raise SpaceFailed(
            f"the model reports no {objective.monitor} (it logged {', '.join(history[0])}); "
            f"compile it with metrics=[{objective.metric!r}] or leave it uncompiled."
        )
    logged = [h for h in history if objective.monitor in h]
    val_loss = None
    if logged:  # the epoch EarlyStoppingOnTies restored
        best_epoch = best_epoch_of(logged, objective.monitor, objective.is_better)
        value, val_loss = logged[best_epoch][objective.monitor], logged[best_epoch].get(TIE)
    else:
        values = _returned_values(returned, objective.monitor) if returned is not None else []
        if not values:
            raise optuna.TrialPruned("the time budget ran out before the first epoch ended.")
        value, best_epoch = objective.best(values)
    if not math.isfinite(value):
        raise Diverged(f"{objective.monitor} is not finite ({value}).")
    finite = val_loss is not None and math.isfinite(val_loss)
    return value, best_epoch, float(val_loss) if finite else None


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
