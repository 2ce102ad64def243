"""The CLI's live progress display: trials done / budget, pruned, failed, best so far,
elapsed and remaining time, and the running trial's epoch. Uses rich."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from automl.engine import SearchObserver


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class RichProgress(SearchObserver):
    """A status line that redraws in place, plus one printed line per finished trial."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.live = Live(Text(""), console=self.console, refresh_per_second=4, transient=True)
        self.started = time.monotonic()
        self.budget: int | None = None
        self.timeout: float | None = None
        self.counts = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0}
        self.done_before = 0
        self.best: float | None = None
        self.current = ""
        self.trial_seconds: list[float] = []
        self.trial_started_at = self.started

    def __enter__(self) -> RichProgress:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(*exc)

    # -- SearchObserver ---------------------------------------------------------------
    def stage(self, text: str) -> None:
        self.current = text
        self._redraw()

    def search_started(
        self,
        *,
        study: str,
        trials: int | None,
        timeout: float | None,
        done: int,
        best: float | None,
    ) -> None:
        self.budget, self.timeout, self.done_before, self.best = trials, timeout, done, best
        self.started = time.monotonic()
        resumed = f", resuming after {done} finished trials" if done else ""
        self.console.print(f"study [bold]{study}[/]{resumed}")
        self._redraw()

    def plan_made(self, text: str) -> None:
        self.console.print(f"plan: {text}")

    def trial_started(self, number: int, params: dict[str, Any]) -> None:
        self.trial_started_at = time.monotonic()
        self.current = f"trial {number}: building and training"
        self._redraw()

    def epoch_ended(self, number: int, epoch: int, max_epochs: int, logs: dict[str, float]) -> None:
        metric = logs.get("val_accuracy", logs.get("val_loss"))
        shown = f" · val {metric:.4f}" if metric is not None else ""
        self.current = f"trial {number}: epoch {epoch}/{max_epochs}{shown}"
        self._redraw()

    def trial_ended(
        self, number: int, state: str, value: float | None, best: float | None, reason: str
    ) -> None:
        self.counts[state] = self.counts.get(state, 0) + 1
        self.trial_seconds.append(time.monotonic() - self.trial_started_at)
        self.best = best
        score = f"{value:.4f}" if value is not None else "-"
        style = {"COMPLETE": "green", "PRUNED": "yellow", "FAIL": "red"}.get(state, "")
        why = f"  {reason}" if reason else ""
        self.console.print(
            f"trial {number:>3} [{style}]{state:<8}[/] value {score}  "
            f"({self.trial_seconds[-1]:.0f}s){why}",
            markup=True,
            highlight=False,
        )
        self.current = ""
        self._redraw()

    # -- rendering --------------------------------------------------------------------
    def _redraw(self) -> None:
        self.live.update(Text(self.status_line()))

    def status_line(self) -> str:
        """The one-line summary of where the search stands."""
        run_here = sum(self.counts.values())
        done = self.done_before + run_here
        budget = f"/{self.budget}" if self.budget else ""
        best = f"{self.best:.4f}" if self.best is not None else "-"
        elapsed = time.monotonic() - self.started
        parts = [
            f"trials {done}{budget}",
            f"pruned {self.counts['PRUNED']}",
            f"failed {self.counts['FAIL']}",
            f"best {best}",
            f"elapsed {_clock(elapsed)}",
            f"remaining {_clock(self._remaining(elapsed, done))}",
        ]
        line = " · ".join(parts)
        return f"{line}\n{self.current}" if self.current else line

    def _remaining(self, elapsed: float, done: int) -> float | None:
        estimates = []
        if self.timeout is not None:
            estimates.append(self.timeout - elapsed)
        if self.budget is not None and self.trial_seconds:
            mean = sum(self.trial_seconds) / len(self.trial_seconds)
            estimates.append(mean * max(0, self.budget - done))
        return min(estimates) if estimates else None

    def print_summary(self, summary: dict[str, Any]) -> None:
        """The closing lines: the spend, best trial, test metrics, where the model is."""
        trials = summary["trials"]
        self.console.print(
            f"finished: {trials['complete']} complete, {trials['pruned']} pruned, "
            f"{trials['failed']} failed"
        )
        spent = summary.get("spent")
        if spent:
            self.console.print(
                f"spent: {spent['total_s']:.0f} s (setup {spent['setup_s']:.0f} s, measuring "
                f"{spent['measure_s']:.0f} s, trials {spent['trials_s']:.0f} s, export "
                f"{spent['finish_s']:.0f} s)"
            )
        best = summary.get("best")
        if not best:
            self.console.print("no trial completed; nothing exported.")
            return
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in summary["test"]["metrics"].items())
        exported = (summary.get("final") or {}).get("description", f"trial {best['trial']}")
        chosen = "" if exported == f"trial {best['trial']}" else f"; exported: {exported}"
        self.console.print(
            f"best trial {best['trial']}: {best['metric']} {best['val_metric']:.4f}{chosen}; "
            f"test {metrics}"
        )
        if summary.get("baseline"):  # the scikit-learn yardstick, beside the search
            self.console.print(summary["baseline"]["line"])
        self.console.print(f"model: {summary['model_path']}")
