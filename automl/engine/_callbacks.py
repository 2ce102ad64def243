"""Keras callbacks the trainer adds to every trial's `fit`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import keras
import optuna
from optuna_integration.keras import KerasPruningCallback


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


class TrialPruning(KerasPruningCallback):
    """Optuna's Keras pruning callback, with starting points exempt from pruning.

    A protected trial still reports every epoch, so the pruner can compare later trials
    against it, but is never cut short: a known-good starting point is worth its full
    budget.
    """

    def __init__(self, trial: optuna.Trial, monitor: str, *, protected: bool = False) -> None:
        super().__init__(trial, monitor)
        self.protected = protected

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not self.protected:
            super().on_epoch_end(epoch, logs)
            return
        value = (logs or {}).get(self._monitor)
        if value is not None:
            self._trial.report(float(value), step=epoch)


class EpochReporter(keras.callbacks.Callback):
    """Hands each epoch's logs to `report(epoch, logs)` and remembers them.

    The engine uses it for MLflow (one batched call per epoch), the progress display,
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
