"""keras-tuner's `hp` API on top of an Optuna trial.

Users' `build_model(hp)` functions call `hp.Int`, `hp.Float`, `hp.Choice`, `hp.Boolean`,
`hp.Fixed` and `hp.conditional_scope`; each becomes a real Optuna distribution, so TPE,
CMA-ES and GP samplers see ranges, log scales and steps, not opaque strings. Parameters in
an inactive conditional scope are never suggested: they return their default, so samplers
spend nothing on inert knobs.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from automl._errors import UsageError

if TYPE_CHECKING:
    import optuna


class HyperParameters:
    """The `hp` object handed to a space's build function.

    Args:
        trial: The Optuna trial (or a `optuna.trial.FixedTrial`) that samples values.
    """

    def __init__(self, trial: optuna.trial.BaseTrial) -> None:
        self.trial = trial
        self.values: dict[str, Any] = {}
        self.fixed: set[str] = set()
        self._scopes: list[tuple[str, tuple[Any, ...]]] = []

    # -- scopes ------------------------------------------------------------------------
    @contextlib.contextmanager
    def conditional_scope(self, parent_name: str, parent_values: Any) -> Iterator[None]:
        """Make the parameters defined inside active only when `parent_name` is in values."""
        if not isinstance(parent_values, list | tuple):
            parent_values = [parent_values]
        self._scopes.append((parent_name, tuple(parent_values)))
        try:
            yield
        finally:
            self._scopes.pop()

    def is_active(self) -> bool:
        """True when every enclosing conditional scope holds."""
        return all(self.values.get(name) in allowed for name, allowed in self._scopes)

    # -- parameters --------------------------------------------------------------------
    def Int(  # noqa: N802 - keras-tuner's names are the API
        self,
        name: str,
        min_value: int,
        max_value: int,
        step: int | None = None,
        sampling: str = "linear",
        default: int | None = None,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> int:
        """An integer in [min_value, max_value]; `sampling="log"` for a log scale."""
        log = _check_range(name, min_value, max_value, sampling)
        if step is not None and step < 1:
            raise UsageError(f"hp.Int {name!r}: step must be >= 1, but got step={step}.")
        if log and step and step > 1:  # keras-tuner: on a log scale, step is a multiplier
            values = _geometric(int(min_value), int(max_value), step)
            return self.Choice(
                name, values, default=default, parent_name=parent_name, parent_values=parent_values
            )
        return self._suggest(
            name,
            default if default is not None else min_value,
            parent_name,
            parent_values,
            lambda: self.trial.suggest_int(
                name, int(min_value), int(max_value), step=step or 1, log=log
            ),
        )

    def Float(  # noqa: N802
        self,
        name: str,
        min_value: float,
        max_value: float,
        step: float | None = None,
        sampling: str = "linear",
        default: float | None = None,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> float:
        """A float in [min_value, max_value]; `sampling="log"` for a log scale."""
        log = _check_range(name, min_value, max_value, sampling)
        if log and step and step > 1:  # keras-tuner: on a log scale, step is a multiplier
            values = _geometric(min_value, max_value, step)
            return self.Choice(
                name, values, default=default, parent_name=parent_name, parent_values=parent_values
            )
        return self._suggest(
            name,
            default if default is not None else min_value,
            parent_name,
            parent_values,
            lambda: self.trial.suggest_float(
                name, float(min_value), float(max_value), step=None if log else step, log=log
            ),
        )

    def Choice(  # noqa: N802
        self,
        name: str,
        values: Sequence[Any],
        ordered: bool | None = None,
        default: Any = None,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> Any:
        """One of `values` (str, int, float or bool)."""
        values = list(values)
        if not values:
            raise UsageError(f"hp.Choice {name!r}: values must not be empty.")
        return self._suggest(
            name,
            default if default is not None else values[0],
            parent_name,
            parent_values,
            lambda: self.trial.suggest_categorical(name, values),
        )

    def Boolean(  # noqa: N802
        self,
        name: str,
        default: bool = False,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> bool:
        """True or False."""
        return self._suggest(
            name,
            default,
            parent_name,
            parent_values,
            lambda: self.trial.suggest_categorical(name, [False, True]),
        )

    def Fixed(  # noqa: N802
        self, name: str, value: Any, parent_name: str | None = None, parent_values: Any = None
    ) -> Any:
        """A constant, recorded with the trial's values but never sampled."""
        self.values[name] = value
        self.fixed.add(name)
        return value

    def get(self, name: str) -> Any:
        """The value of an already defined parameter."""
        if name not in self.values:
            raise KeyError(f"hyperparameter {name!r} has not been defined in this trial.")
        return self.values[name]

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def _suggest(
        self, name: str, default: Any, parent_name: str | None, parent_values: Any, sample: Any
    ) -> Any:
        if name in self.values:  # keras-tuner returns the same value for a repeated name
            return self.values[name]
        if parent_name is not None:
            with self.conditional_scope(parent_name, parent_values):
                return self._suggest(name, default, None, None, sample)
        value = sample() if self.is_active() else default
        self.values[name] = value
        return value


def _geometric(low: float, high: float, factor: float) -> list:
    """keras-tuner's log-scale steps: low, low*factor, ... up to high."""
    values = [low]
    while values[-1] * factor <= high * (1 + 1e-9):
        values.append(type(low)(values[-1] * factor))
    return values


def _check_range(name: str, low: float, high: float, sampling: str) -> bool:
    """Validate a numeric range before any training; return True for log sampling."""
    if sampling not in ("linear", "log", "reverse_log"):
        raise UsageError(
            f"hp {name!r}: sampling must be 'linear' or 'log', but got sampling={sampling!r}."
        )
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise UsageError(
            f"hp {name!r}: min_value <= max_value must hold, but got "
            f"min_value={low}, max_value={high}."
        )
    log = sampling != "linear"
    if log and low <= 0:
        raise UsageError(f"hp {name!r}: a log range must be > 0, but got min_value={low}.")
    return log
