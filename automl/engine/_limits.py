"""The limits a model must meet to be trained: `--max-params` and `--max-latency-ms`.

A trial's model is measured right after it is built (`automl.footprint`); one that
breaks a limit is rejected without spending an epoch on it. Optuna's samplers learn the
feasible region through `Limits.violations` (their `constraints_func`).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from automl._errors import UsageError
from automl.record import TrialRecord

if TYPE_CHECKING:
    import optuna

    from automl.config import SearchConfig
    from automl.footprint import Footprint

REJECTED = "rejected: "  # how a rejected trial's reason starts
FIRST_TRIALS = 10  # rejected in a row, with none feasible: no model of the space fits


@dataclasses.dataclass(frozen=True)
class Limits:
    """`--max-params` and `--max-latency-ms`: what a model must meet to be trained.

    Attributes:
        max_params: The most parameters a model may have; None: no limit.
        max_latency_ms: The most milliseconds per example (`Footprint.latency_ms`);
            None: no limit.
    """

    max_params: int | None = None
    max_latency_ms: float | None = None

    @classmethod
    def of(cls, config: SearchConfig) -> Limits:
        """The limits a search's options set."""
        return cls(max_params=config.max_params, max_latency_ms=config.max_latency_ms)

    @property
    def active(self) -> bool:
        """Whether any limit is set."""
        return self.max_params is not None or self.max_latency_ms is not None

    def violations(self, trial: optuna.trial.FrozenTrial) -> tuple[float, ...]:
        """Optuna's `constraints_func`: one value per limit, over 0 by the fraction the
        trial's model exceeds it (0 when within, or not measured: a trial that never
        built a model)."""
        facts = TrialRecord.read(trial)
        pairs = ((facts.n_params, self.max_params), (facts.latency_ms, self.max_latency_ms))
        return tuple(
            0.0 if value is None else max(0.0, value / limit - 1.0)
            for value, limit in pairs
            if limit is not None
        )

    def reason(self, footprint: Footprint) -> str | None:
        """Why a model breaks the limits (None: it meets them)."""
        reasons = []
        if self.max_params is not None and footprint.n_params > self.max_params:
            reasons.append(
                f"{footprint.n_params:,} parameters, over the limit of {self.max_params:,}"
            )
        latency = footprint.latency_ms
        limit = self.max_latency_ms
        if limit is not None and latency is not None and latency > limit:
            reasons.append(
                f"{latency:.2f} ms per example, over the limit of {self.max_latency_ms:g}"
            )
        return "; ".join(reasons) or None

    def stop_if_unmeetable(self, study: optuna.Study) -> None:
        """Stop a search whose first `FIRST_TRIALS` built models all broke the limits.

        Raises:
            UsageError: Naming the smallest model seen and the fix.
        """
        if not self.active:
            return
        built = [
            TrialRecord.read(t)
            for t in study.get_trials(deepcopy=False)
            if TrialRecord.read(t).n_params is not None
        ]
        if len(built) < FIRST_TRIALS or any(not facts.infeasible for facts in built):
            return
        smallest = min(built, key=lambda facts: facts.n_params or 0)
        options = [
            name
            for name, limit in (
                ("{max_params}", self.max_params),
                ("{max_latency_ms}", self.max_latency_ms),
            )
            if limit is not None
        ]
        raise UsageError(
            f"the first {len(built)} models of the space all broke the limits (the "
            f"smallest: {smallest.reason.removeprefix(REJECTED)}), so the search stopped; "
            f"raise {' or '.join(options)}, or search a smaller space."
        )
