"""Keras callbacks the trainer adds to every trial's `fit`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import keras
import optuna


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
