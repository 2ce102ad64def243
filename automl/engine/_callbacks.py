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
STRETCH_SPARE = 1.2  # a schedule stretches only with this much time to spare
# The first epoch's pace is trusted only where the fit's overhead (tracing, measured on
# the family's reference model) is at most this share of it: on a small model tracing is
# most of the epoch, and another model's tracing time says little about this one's.
FIRST_EPOCH_OVERHEAD_SHARE = 0.5


class _WarpedSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`schedule` read at a moved step, `offset + rate * step`: `ScheduleToTime` moves
    it so that what remains of the schedule spans the steps that remain in time.

    The offset and rate are variables, so a traced train step sees their new values.
    The warp is a run-time thing: a model saved in the middle of a fit (a user's
    `ModelCheckpoint`) must save the plain schedule and load with plain Keras, so the
    warp serializes as the schedule it wraps: Keras names a saved object by its
    `__class__` and fills it with its `get_config()`.
    """

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # noqa: D105 - see the class docstring
        return type(self.schedule)

    def __init__(self, schedule: keras.optimizers.schedules.LearningRateSchedule) -> None:
        self.schedule = schedule
        self.offset = keras.Variable(0.0, trainable=False, name="schedule_offset")
        self.rate = keras.Variable(1.0, trainable=False, name="schedule_rate")

    def __call__(self, step: Any) -> Any:
        moved = self.offset + self.rate * keras.ops.cast(step, "float32")
        return self.schedule(moved)

    def at(self, step: int) -> float:
        """The schedule's own step that optimizer step `step` reads."""
        return float(self.offset.numpy()) + float(self.rate.numpy()) * step

    def squeeze(self, step: int, end: float, steps_left: int) -> None:
        """From optimizer step `step` on, reach the schedule's step `end` in `steps_left`
        steps, with no jump at `step`."""
        now = self.at(step)
        rate = (end - now) / max(1, steps_left)
        self.rate.assign(rate)
        self.offset.assign(now - rate * step)

    def get_config(self) -> dict[str, Any]:
        return self.schedule.get_config()


class ScheduleToTime(keras.callbacks.Callback):
    """Keeps a trial's learning-rate schedule whole when its epochs run slower than planned.

    A trial is planned for the epochs that fit before `until`, its schedule decaying over
    them, from an estimate of a few timed steps; this machine's speed also drifts (two
    consecutive epochs of the same model took 29 s and 39 s). After each epoch from the
    second on (the first also traces), the epochs still fitting before `until` at the
    pace of the last `PACE_EPOCHS` (a mean: one slow epoch should not cost several; each
    timed from the previous one's end, so the time between epochs counts) are counted.
    When fewer remain than planned, what is left of the schedule is squeezed into them:
    the schedule is read at a step that moves faster from now on, with no jump, so its
    warm-up and high rates are not skipped and its decay still ends with the last epoch
    that fits, where the deadline would have cut it in the middle. Training stops after
    that epoch. When epochs run faster, so that more fit with `STRETCH_SPARE` to spare,
    the schedule is stretched the same way, up to `most_epochs`: a trial planned from a
    pessimistic estimate (one long training was planned for 14 epochs of 119 s, ran them
    at 94 s and left a quarter of its window unused) uses its time. With
    `fit_overhead_s`, the first epoch is checked too, at its duration less that
    overhead, and only to squeeze, where even a fifth faster the planned epochs would
    not fit: a short trial has no second epoch to correct it (an exploration trial
    planned for 2 epochs of 40 s within 97 s ran 84 + 69 s). The optimizer's own step
    counter is untouched (Adam's bias correction, weight averaging). The epochs given up
    and gained in the end are recorded (`TrialRecord.skipped_epochs`,
    `stretched_epochs`). A constant rate has nothing to squeeze: the trial only stops in
    time.

    Args:
        trial: The trial, whose record gets the epochs given up (None: only `skipped`).
        until: `time.monotonic()` at which the trial's time ends, or None (no refitting).
        planned_epochs: The epochs its schedule was built for.
        most_epochs: The most it may stretch to (fit's `epochs`; None: `planned_epochs`).
        fit_overhead_s: What a fit of its family costs once (`_timing.Speed`), left out of
            its first epoch's pace; None: the first epoch is not checked.
    """

    def __init__(
        self,
        trial: optuna.Trial | None,
        until: float | None,
        planned_epochs: int,
        most_epochs: int | None = None,
        fit_overhead_s: float | None = None,
    ) -> None:
        super().__init__()
        self.trial, self.until, self.planned = trial, until, planned_epochs
        self.fit_overhead_s = fit_overhead_s
        self.most = max(planned_epochs, most_epochs or planned_epochs)
        self.stop_after, self.skipped = planned_epochs, 0
        self.durations: list[float] = []
        self.epoch_started = 0.0
        self._warped: _WarpedSchedule | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.stop_after, self.skipped, self.durations = self.planned, 0, []
        self.epoch_started = time.monotonic()
        # Keras reads a schedule back only as its current value; its own attribute holds it.
        schedule = getattr(self.model.optimizer, "_learning_rate", None)
        schedule_class = keras.optimizers.schedules.LearningRateSchedule
        if self.until is not None and isinstance(schedule, schedule_class):  # before tracing
            self._warped = _WarpedSchedule(schedule)
            self.model.optimizer.learning_rate = self._warped

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._warped is not None:  # a saved model keeps its plain schedule
            self.model.optimizer.learning_rate = self._warped.schedule
            self._warped = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        # From the last epoch's end: what happens between epochs (later callbacks saving,
        # a new iterator that tf.data's autotuning held for seconds) also takes the time.
        now = time.monotonic()
        self.durations.append(now - self.epoch_started)
        self.epoch_started = now
        done = epoch + 1
        if done >= self.stop_after:
            self.model.stop_training = True
            return
        pace = self._pace()
        if self.until is None or pace is None:
            return
        # The first epoch's pace rests on a reference model's overhead: it only
        # squeezes, and only where a fifth faster would not fit either.
        margin = STRETCH_SPARE if done == 1 else 1.0
        fitting = max(0, math.floor((self.until - now) * margin / pace))
        if done + fitting >= self.stop_after:
            if done == 1:
                return
            # On pace or faster (this machine is shared: one run lost 8 of 20 epochs to
            # two slow ones, then ran fast again): stretch, with a fifth to spare, since
            # a stretch by rounding would leave the next epoch short of time.
            fitting = math.floor((self.until - now) / (pace * STRETCH_SPARE))
            if done + fitting <= self.stop_after or self.stop_after >= self.most:
                return
        stop_after = min(self.most, done + fitting)
        self.stop_after, self.skipped = stop_after, max(0, self.planned - stop_after)
        if self.trial is not None:
            stretched = max(0, stop_after - self.planned)
            TrialRecord.write(self.trial, skipped_epochs=self.skipped, stretched_epochs=stretched)
        if fitting == 0:
            self.model.stop_training = True
        elif self._warped is not None:
            steps = int(self.model.optimizer.iterations.numpy())
            per_epoch = (self.params or {}).get("steps") or steps // done
            end = self.planned * per_epoch  # the schedule's last step, as it was built
            self._warped.squeeze(steps, end, (stop_after - done) * per_epoch)

    def _pace(self) -> float | None:
        """Seconds an epoch takes now: the mean of the last `PACE_EPOCHS` after the first
        (which also traces); after the first alone, its duration less `fit_overhead_s`
        where that is trusted (see `FIRST_EPOCH_OVERHEAD_SHARE`); else None."""
        if len(self.durations) >= 2:
            recent = self.durations[1:][-PACE_EPOCHS:]
            return sum(recent) / len(recent)
        first, overhead = self.durations[0], self.fit_overhead_s
        if overhead is None or overhead > FIRST_EPOCH_OVERHEAD_SHARE * first:
            return None
        return first - overhead


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
