"""keras-tuner's `hp` API on top of an Optuna trial.

Users' `build_model(hp)` functions call `hp.Int`, `hp.Float`, `hp.Choice`, `hp.Boolean`,
`hp.Fixed` and `hp.conditional_scope`; each becomes a real Optuna distribution, so TPE,
CMA-ES and GP samplers see ranges, log scales and steps, not opaque strings. Parameters in
an inactive conditional scope are never suggested: they return their default, so samplers
spend nothing on inert knobs.

Two additions keras-tuner lacks: `name_scope` prefixes the names a sub-space defines (the
`auto` space nests whole spaces without their names colliding), and `overrides` fix or
narrow parameters from a space config file without touching the space's code.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from automl._errors import UsageError

if TYPE_CHECKING:
    import optuna


class HyperParameters:
    """The `hp` object handed to a space's build function.

    Args:
        trial: The Optuna trial (or a `optuna.trial.FixedTrial`) that samples values.
        overrides: Full parameter name -> a value that fixes it, a list that narrows its
            choices, or a `{"min": .., "max": ..}` mapping that narrows its range.

    Attributes:
        values: Every parameter defined so far (inactive ones hold their default).
        fixed: Names whose value was fixed, not sampled.
        fit_kwargs: Extra `model.fit` arguments the space chose (e.g. `batch_size`).
        callbacks: Extra Keras callbacks the space asked for (e.g. ReduceLROnPlateau).
        requested: Every full name the space asked for, active or not.
    """

    def __init__(
        self, trial: optuna.trial.BaseTrial, overrides: Mapping[str, Any] | None = None
    ) -> None:
        self.trial = trial
        self.overrides = dict(overrides or {})
        self.values: dict[str, Any] = {}
        self.fixed: set[str] = set()
        self.fit_kwargs: dict[str, Any] = {}
        self.callbacks: list[Any] = []
        self.requested: set[str] = set()
        self._scopes: list[tuple[str, tuple[Any, ...]]] = []
        self._prefix = ""

    # -- names -------------------------------------------------------------------------
    @contextlib.contextmanager
    def name_scope(self, prefix: str) -> Iterator[None]:
        """Prefix every name defined inside with `prefix.` (nested scopes join with dots)."""
        outer = self._prefix
        self._prefix = f"{outer}{prefix}."
        try:
            yield
        finally:
            self._prefix = outer

    def _full(self, name: str) -> str:
        return self._prefix + name

    # -- scopes ------------------------------------------------------------------------
    @contextlib.contextmanager
    def conditional_scope(self, parent_name: str, parent_values: Any) -> Iterator[None]:
        """Make the parameters defined inside active only when `parent_name` is in values."""
        if not isinstance(parent_values, list | tuple):
            parent_values = [parent_values]
        self._scopes.append((self._full(parent_name), tuple(parent_values)))
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

        def sample(full: str, narrowed: Any) -> int:
            if isinstance(narrowed, list):
                return self.trial.suggest_categorical(full, narrowed)
            low, high = narrowed
            return self.trial.suggest_int(full, int(low), int(high), step=step or 1, log=log)

        return self._suggest(
            name,
            default if default is not None else min_value,
            parent_name,
            parent_values,
            sample,
            lambda full, ov: _narrow_range(full, ov, min_value, max_value),
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

        def sample(full: str, narrowed: Any) -> float:
            if isinstance(narrowed, list):
                return self.trial.suggest_categorical(full, narrowed)
            low, high = narrowed
            return self.trial.suggest_float(
                full, float(low), float(high), step=None if log else step, log=log
            )

        return self._suggest(
            name,
            default if default is not None else min_value,
            parent_name,
            parent_values,
            sample,
            lambda full, ov: _narrow_range(full, ov, min_value, max_value),
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
            lambda full, narrowed: self.trial.suggest_categorical(full, narrowed),
            lambda full, ov: _narrow_choices(full, ov, values),
        )

    def Boolean(  # noqa: N802
        self,
        name: str,
        default: bool = False,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> bool:
        """True or False."""
        return self.Choice(
            name,
            [False, True],
            default=default,
            parent_name=parent_name,
            parent_values=parent_values,
        )

    def Fixed(  # noqa: N802
        self, name: str, value: Any, parent_name: str | None = None, parent_values: Any = None
    ) -> Any:
        """A constant, recorded with the trial's values but never sampled."""
        full = self._full(name)
        self.requested.add(full)
        if full in self.overrides and not isinstance(self.overrides[full], list | dict):
            value = self.overrides[full]
        self.values[full] = value
        self.fixed.add(full)
        return value

    def get(self, name: str) -> Any:
        """The value of an already defined parameter (inside a name scope, its short name)."""
        for key in (self._full(name), name):
            if key in self.values:
                return self.values[key]
        raise KeyError(f"hyperparameter {name!r} has not been defined in this trial.")

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __contains__(self, name: str) -> bool:
        return self._full(name) in self.values or name in self.values

    def _suggest(
        self,
        name: str,
        default: Any,
        parent_name: str | None,
        parent_values: Any,
        sample: Any,
        narrow: Any,
    ) -> Any:
        full = self._full(name)
        if full in self.values:  # keras-tuner returns the same value for a repeated name
            return self.values[full]
        if parent_name is not None:
            with self.conditional_scope(parent_name, parent_values):
                return self._suggest(name, default, None, None, sample, narrow)
        self.requested.add(full)
        override = self.overrides.get(full)
        if full in self.overrides and not isinstance(override, list | dict):
            narrow(full, [override])  # a fixed value must lie in the space's own range
            self.fixed.add(full)
            value = override
        elif self.is_active():
            value = sample(full, narrow(full, override))
        else:
            value = default
        self.values[full] = value
        return value


def _narrow_range(full: str, override: Any, low: float, high: float) -> Any:
    """The (low, high) range or list of values to sample, within the space's own range."""
    if override is None:
        return (low, high)
    if isinstance(override, list):
        outside = [v for v in override if not low <= v <= high]
        if not override or outside:
            raise UsageError(
                f"space config narrows {full!r} to {override}, but the space allows "
                f"{low}..{high}; pick values inside that range."
            )
        return list(override)
    new_low, new_high = override.get("min", low), override.get("max", high)
    if not low <= new_low <= new_high <= high:
        raise UsageError(
            f"space config narrows {full!r} to {new_low}..{new_high}, but the space allows "
            f"{low}..{high}; min <= max must hold inside that range."
        )
    return (new_low, new_high)


def _narrow_choices(full: str, override: Any, values: list[Any]) -> list[Any]:
    """The subset of `values` to sample."""
    if override is None:
        return values
    if isinstance(override, dict):
        raise UsageError(
            f"space config gives {full!r} a min/max range, but it is a choice among "
            f"{values}; give a list of choices instead."
        )
    unknown = [v for v in override if v not in values]
    if not override or unknown:
        raise UsageError(
            f"space config narrows {full!r} to {override}, but the space offers {values}; "
            f"pick a non-empty subset."
        )
    return list(override)


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
