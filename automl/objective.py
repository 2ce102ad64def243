"""`Objective`: the metric trials are scored on, and the one place that knows which score
is better.

Everything that ranks trials, epochs, checkpoints or registered models asks an
`Objective`; nothing else compares scores. Cheap to import (no Optuna, no Keras).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from automl._errors import UsageError

if TYPE_CHECKING:
    import optuna

# metric name -> (tasks it applies to, direction of better).
METRICS: dict[str, tuple[tuple[str, ...], str]] = {
    "accuracy": (("classification",), "maximize"),
    "auc": (("classification",), "maximize"),
    "f1": (("classification",), "maximize"),
    "rmse": (("regression",), "minimize"),
    "mse": (("regression",), "minimize"),
    "mae": (("regression",), "minimize"),
    "r2": (("regression",), "maximize"),
    "loss": (("classification", "regression"), "minimize"),
}
DIRECTIONS = ("maximize", "minimize")

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Objective:
    """The validation metric trials are scored on and its direction.

    Attributes:
        monitor: The key in Keras' epoch logs, e.g. "val_accuracy".
        direction: "maximize" or "minimize".
    """

    monitor: str = "val_accuracy"
    direction: str = "maximize"

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, but got {self.direction!r}.")

    @classmethod
    def for_task(cls, task: str, metric: str | None = None) -> Objective:
        """The validation `metric` (default: accuracy, or RMSE for regression).

        Raises:
            UsageError: When the metric does not fit the task.
        """
        metric = metric or ("rmse" if task == "regression" else "accuracy")
        tasks, direction = METRICS[metric]
        if task not in tasks:
            fitting = [name for name, (ok, _) in METRICS.items() if task in ok]
            raise UsageError(
                f"{{metric}} {metric} does not apply to {task}; choose one of: "
                f"{', '.join(fitting)}."
            )
        return cls(f"val_{metric}", direction)

    @classmethod
    def of_study(cls, study: optuna.Study, monitor: str = "value") -> Objective:
        """The objective of a study that scores trials on `monitor` (Optuna keeps the
        direction; ranking trials needs only that)."""
        return cls(monitor, study.direction.name.lower())

    @property
    def metric(self) -> str:
        """The metric's name without the validation prefix ("accuracy")."""
        return self.monitor.removeprefix("val_")

    @property
    def mode(self) -> str:
        """"max" or "min", as Keras callbacks take it."""
        return "max" if self.direction == "maximize" else "min"

    def is_better(self, value: float, than: float | None) -> bool:
        """Whether `value` is strictly better than `than` (anything beats None)."""
        if than is None:
            return True
        return value > than if self.direction == "maximize" else value < than

    def best(self, values: list[float]) -> tuple[float, int]:
        """Best value and its 0-based index (the first one on ties)."""
        index = self.best_of(range(len(values)), key=values.__getitem__)
        return values[index], index

    def best_of(self, items: Iterable[T], key: Callable[[T], float]) -> T:
        """The item whose `key` is best (the first one on ties)."""
        pick = max if self.direction == "maximize" else min
        return pick(items, key=key)

    def ranked(self, items: Iterable[T], key: Callable[[T], Any]) -> list[T]:
        """`items` best first (stable: ties keep their order)."""
        return sorted(items, key=key, reverse=self.direction == "maximize")


def ranked_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """A study's trials as leaderboards show them: complete ones best first, then the
    others by number."""
    objective = Objective.of_study(study)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    others = [t for t in trials if t.state.name != "COMPLETE"]
    return objective.ranked(complete, key=lambda t: t.value) + others
