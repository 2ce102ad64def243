"""`SearchObserver`: how the engine tells a front end (the CLI's progress display) what
happens. The engine never prints; every method here is a no-op by default."""

from __future__ import annotations

from typing import Any


class SearchObserver:
    """Receives search events; subclass and override what you need."""

    def search_started(
        self,
        *,
        study: str,
        trials: int | None,
        timeout: float | None,
        done: int,
        best: float | None,
    ) -> None:
        """The study is open; `done` trials finished in earlier runs; `timeout` is the
        seconds left of the budget, setup already spent (None: no time limit)."""

    def plan_made(self, text: str) -> None:
        """The plan: what an epoch costs here and how trials fit the budget (one line)."""

    def trial_started(self, number: int, params: dict[str, Any]) -> None:
        """A trial's model was built from these params."""

    def epoch_ended(self, number: int, epoch: int, max_epochs: int, logs: dict[str, float]) -> None:
        """A trial finished epoch `epoch` (1-based)."""

    def trial_ended(
        self, number: int, state: str, value: float | None, best: float | None, reason: str
    ) -> None:
        """A trial ended as COMPLETE, PRUNED or FAIL; `best` is the study's best so far."""

    def stage(self, text: str) -> None:
        """A non-trial step is under way (loading data, exporting, ...)."""
