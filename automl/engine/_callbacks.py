"""Keras callbacks the trainer adds to every trial's `fit`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import keras
import optuna

from automl.record import TrialRecord


class Deadline(keras.callbacks.Callback):
    """Stops training at a wall-clock deadline, so `--timeout` holds inside a trial too.

    Args:
        deadline: `time.monotonic()` value to stop at, or None for no deadline.
    """

    def __init__(self, deadline: float | None) -> None:
        super().__init__()
        self.deadline = deadline
        self.hit = False

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.hit = False

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.hit = True
            self.model.stop_training = True


PACE_EPOCHS = 3  # the epochs whose mean duration says how fast a trial trains now


class ScheduleToTime(keras.callbacks.Callback):
    """Keeps a trial's learning-rate schedule whole when its epochs run slower than planned.

    A trial is planned for the epochs that fit before `until`, its schedule decaying over
    them, from an estimate of a few timed steps; this machine's speed also drifts (two
    consecutive epochs of the same model took 29 s and 39 s). After each epoch from the
    second on (the first also traces), the epochs still fitting before `until` at the
    pace of the last `PACE_EPOCHS` (a mean: one slow epoch should not cost several) are
    counted. When fewer remain than planned, the schedule skips ahead by the missing epochs: the
    optimizer's step counter moves on by whole epochs (so an average of the weights
    still lands on epoch ends), and training stops after the last epoch that fits, with
    the schedule's decay complete instead of cut by the deadline in the middle. Optimizers
    whose step size corrects for few steps (Adam's bias correction) take slightly larger
    steps after a skip. The skipped epochs are recorded (`TrialRecord.skipped_epochs`).

    Args:
        trial: The trial, whose record gets the skipped epochs (None: only `skipped`).
        until: `time.monotonic()` at which the trial's time ends, or None (no refitting).
        planned_epochs: The epochs its schedule was built for.
    """

    def __init__(
        self, trial: optuna.Trial | None, until: float | None, planned_epochs: int
    ) -> None:
        super().__init__()
        self.trial, self.until, self.planned = trial, until, planned_epochs
        self.stop_after, self.skipped = planned_epochs, 0
        self.durations: list[float] = []
        self.epoch_started = 0.0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.stop_after, self.skipped, self.durations = self.planned, 0, []

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch_started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        now = time.monotonic()
        self.durations.append(now - self.epoch_started)
        done = epoch + 1
        if done >= self.stop_after:
            self.model.stop_training = True
            return
        if self.until is None or done < 2:
            return
        recent = self.durations[1:][-PACE_EPOCHS:]
        pace = sum(recent) / len(recent)
        fitting = max(0, math.floor((self.until - now) / pace))
        missing = self.stop_after - done - fitting
        if missing <= 0:
            return
        steps = (self.params or {}).get("steps")
        if steps:
            self.model.optimizer.iterations.assign_add(missing * int(steps))
        self.skipped += missing
        self.stop_after = done + fitting
        if self.trial is not None:
            TrialRecord.write(self.trial, skipped_epochs=self.skipped)
        if fitting == 0:
            self.model.stop_training = True


class TrialPruning(keras.callbacks.Callback):
    """Reports the monitored metric to Optuna each epoch and prunes when the pruner says so.

    Like optuna-integration's `KerasPruningCallback`, with three differences: steps are
    1-based epoch counts, so Hyperband's resources mean epochs; the last epoch is never
    pruned, since its training is already paid for; and a `protected` trial (a space's
    starting point) reports but is never cut short.

    Args:
        trial: The Optuna trial.
        monitor: The metric in the epoch logs, e.g. "val_accuracy".
        max_epochs: The trial's epoch cap.
        protected: Report only, never prune.
        silent: Neither report nor prune (a promoted full-data trial: its curve must not
            raise the bar for subset trials).
    """

    def __init__(
        self,
        trial: optuna.Trial,
        monitor: str,
        *,
        max_epochs: int,
        protected: bool = False,
        silent: bool = False,
    ) -> None:
        super().__init__()
        self.trial, self.monitor = trial, monitor
        self.max_epochs, self.protected, self.silent = max_epochs, protected, silent

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if self.silent or value is None or not math.isfinite(float(value)):
            return
        step = epoch + 1
        self.trial.report(float(value), step=step)
        if not self.protected and step < self.max_epochs and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {step}.")


class EpochReporter(keras.callbacks.Callback):
    """Hands each epoch's logs to `report(epoch, logs)` and remembers them.

    The engine uses it for MLflow (`StudyTracker.log_epoch`), the progress display,
    and to know how many epochs a pruned or failed trial ran.
    """

    def __init__(self, report: Callable[[int, dict[str, float]], None]) -> None:
        super().__init__()
        self.report = report
        self.history: list[dict[str, float]] = []

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.history = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        values = {k: float(v) for k, v in (logs or {}).items() if _is_number(v)}
        self.history.append(values)
        self.report(epoch, values)

    @property
    def went_nan(self) -> bool:
        """True when any epoch's loss was NaN or infinite."""
        return any(not math.isfinite(h.get("loss", 0.0)) for h in self.history)


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


TIE = "val_loss"  # what breaks ties on the monitored metric, between epochs and trials


class EarlyStoppingOnTies(keras.callbacks.EarlyStopping):
    """Keras' `EarlyStopping`, where an epoch that ties the best value of the monitored
    metric with a lower `TIE` (the validation loss) also counts as an improvement: its
    weights are the ones restored, and patience starts over.

    Why: on a small validation split, accuracy saturates. On wine's 28 rows it reaches
    1.0 after two epochs, and plain `EarlyStopping` restored those barely trained weights
    (a test log loss of 0.87), though later epochs kept the accuracy and halved the loss.
    `best_epoch_of` picks the same epoch from the logs.
    """

    def __init__(self, monitor: str, **kwargs: Any) -> None:
        super().__init__(monitor, **kwargs)
        self._tie_now = math.inf
        self._tie_best = math.inf

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        self._tie_best = math.inf

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._tie_now = _finite((logs or {}).get(TIE))
        super().on_epoch_end(epoch, logs)
        if self.best_epoch == epoch:
            self._tie_best = self._tie_now

    def _is_improvement(self, monitor_value: float, reference_value: float) -> bool:
        if super()._is_improvement(monitor_value, reference_value):
            return True
        return monitor_value == reference_value and self._tie_now < self._tie_best


def best_epoch_of(
    history: list[dict[str, float]], monitor: str, better: Callable[[float, float], bool]
) -> int:
    """The 0-based epoch `EarlyStoppingOnTies` restores: the first with the best value
    of `monitor`, ties going to the lower validation loss."""
    best = 0
    for epoch, logs in enumerate(history):
        value, held = logs[monitor], history[best][monitor]
        tied = value == held and _finite(logs.get(TIE)) < _finite(history[best].get(TIE))
        if better(value, held) or tied:
            best = epoch
    return best


def _finite(value: float | None) -> float:
    return math.inf if value is None or not math.isfinite(value) else float(value)
