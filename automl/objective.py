"""`Objective`: the metric trials are scored on, and the one place that knows which score
is better.

Everything that ranks trials, epochs, checkpoints or registered models asks an
`Objective`; nothing else compares scores. With `--objectives` the study is
multi-objective: the validation metric first, then costs to minimize (`COSTS`); trials
are still ranked on the metric (`score`), and the Pareto front (`engine._pareto`) is
what the costs add. Cheap to import (no Optuna, no Keras).
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
# --objectives cost name -> the TrialRecord fact that measures it (`automl.footprint`).
COSTS = {"latency_ms": "latency_ms", "params": "n_params", "size_mb": "size_mb"}

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Objective:
    """The validation metric trials are scored on and its direction.

    Attributes:
        monitor: The key in Keras' epoch logs, e.g. "val_accuracy".
        direction: "maximize" or "minimize".
        costs: More objectives, each minimized (names of `COSTS`); none for a
            single-objective study.
    """

    monitor: str = "val_accuracy"
    direction: str = "maximize"
    costs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, but got {self.direction!r}.")

    @classmethod
    def for_task(
        cls, task: str, metric: str | None = None, costs: tuple[str, ...] = ()
    ) -> Objective:
        """The validation `metric` (default: accuracy, or RMSE for regression), and the
        `costs` of `--objectives` after it.

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
        return cls(f"val_{metric}", direction, tuple(costs))

    @classmethod
    def of_study(
        cls, study: optuna.Study, monitor: str = "value", costs: tuple[str, ...] = ()
    ) -> Objective:
        """The objective of a study that scores trials on `monitor` (Optuna keeps the
        directions; ranking trials needs only the first)."""
        return cls(monitor, study.directions[0].name.lower(), tuple(costs))

    @property
    def multi(self) -> bool:
        """Whether the study is multi-objective (`--objectives` names costs)."""
        return bool(self.costs)

    @property
    def directions(self) -> list[str]:
        """Optuna's study directions: the metric's, then "minimize" for each cost."""
        return [self.direction, *("minimize" for _ in self.costs)]

    @property
    def names(self) -> list[str]:
        """Every objective's name, as `--objectives` spells them."""
        return [self.monitor, *self.costs]

    def values(self, value: float, facts: Any) -> float | list[float]:
        """What the trial returns to Optuna: `value`, and with costs each measured cost
        of its model (`facts`, a `TrialRecord`).

        Raises:
            ValueError: A cost that was not measured (the model could not run).
        """
        return [value, *self.cost_values(facts)] if self.costs else value

    def cost_values(self, facts: Any) -> list[float]:
        """The costs of a trial's model, in the order of `costs`, from its facts (a
        `TrialRecord`).

        Raises:
            ValueError: A cost that was not measured (the model could not run).
        """
        costs = [getattr(facts, COSTS[name]) for name in self.costs]
        missing = [name for name, cost in zip(self.costs, costs, strict=True) if cost is None]
        if missing:
            raise ValueError(f"the model's {', '.join(missing)} could not be measured.")
        return [float(cost) for cost in costs]

    @property
    def metric(self) -> str:
        """The metric's name without the validation prefix ("accuracy")."""
        return self.monitor.removeprefix("val_")

    @property
    def mode(self) -> str:
        """ "max" or "min", as Keras callbacks take it."""
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

    def ranked(
        self,
        items: Iterable[T],
        key: Callable[[T], Any],
        tie: Callable[[T], float] | None = None,
    ) -> list[T]:
        """`items` best first. Ties on `key` go to the lower `tie`, then keep their order."""
        if tie is not None:
            items = sorted(items, key=tie)  # sorted() is stable, reversed or not
        return sorted(items, key=key, reverse=self.direction == "maximize")


def score(trial: optuna.trial.FrozenTrial) -> float | None:
    """A finished trial's validation value (its first objective); None without one."""
    values = trial.values
    return None if values is None else float(values[0])


def pareto_front(study: optuna.Study, objective: Objective) -> list[dict[str, Any]]:
    """A multi-objective study's Pareto front (Optuna's `best_trials`) as rows: trial,
    then each objective's value by name; best metric first."""
    front = objective.ranked(study.best_trials, score)
    return [{"trial": t.number, **dict(zip(objective.names, t.values, strict=True))} for t in front]
