"""Study artifacts on the parent run: plots, a leaderboard, the search space, the summary.

Written into `<out>/report/` and logged under the parent run's `study/` folder at the
end of a search and, during a long one, every `AUTOML_REPORT_EVERY` seconds (600 by
default) after a trial ends. Plots come from `optuna.visualization` (HTML, one
self-contained file each, so they open offline in the MLflow UI) and from its matplotlib
twin (PNG). A plot the study cannot draw yet (importances need two complete trials) is
skipped, not an error.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl import settings
from automl.objective import pareto_front, score
from automl.record import StudyRecord, TrialRecord, ranked_trials

if TYPE_CHECKING:
    import optuna

    from automl.tracking._tracker import StudyTracker

logger = logging.getLogger("automl")

# File stem -> the function's name in both optuna.visualization and its matplotlib module.
PLOTS = {
    "optimization_history": "plot_optimization_history",
    "param_importances": "plot_param_importances",
    "parallel_coordinate": "plot_parallel_coordinate",
    "intermediate_values": "plot_intermediate_values",
}


class StudyReport:
    """Writes a study's artifacts and logs them to its parent run.

    Args:
        tracker: Where the artifacts go (a `NullTracker` keeps them on disk only).
        folder: The local folder for the files.
        every: Seconds between refreshes during a search (default: `AUTOML_REPORT_EVERY`,
            else 600).
    """

    def __init__(self, tracker: StudyTracker, folder: Path, *, every: float | None = None) -> None:
        self.tracker = tracker
        self.folder = folder
        self.every = every if every is not None else settings.report_every()
        self._written_at = time.monotonic()

    def due(self) -> bool:
        """True when the last refresh is older than `every` seconds."""
        return time.monotonic() - self._written_at >= self.every

    def write(self, study: optuna.Study, summary: dict[str, Any], space: dict[str, Any]) -> Path:
        """Write every artifact into `folder` and log the folder as `study/`.

        Args:
            study: The study to report.
            summary: The content of `summary.json`.
            space: What the search space is (name, overrides); the distributions the
                trials sampled are added here.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        write_plots(study, self.folder)
        write_leaderboard(study, self.folder / "leaderboard.csv")
        if len(study.directions) > 1:
            write_front(study, self.folder / "pareto_front.csv")
        _write_json(self.folder / "search_space.json", {**space, "params": sampled_space(study)})
        _write_json(self.folder / "summary.json", summary)
        self.tracker.log_artifacts(self.folder, "study")
        self._written_at = time.monotonic()
        return self.folder


def write_plots(study: optuna.Study, folder: Path) -> list[str]:
    """Draw each plot of `PLOTS` as HTML and PNG; returns the stems written."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt
    import optuna.visualization as html_plots
    import optuna.visualization.matplotlib as png_plots

    finished = [
        t for t in study.get_trials(deepcopy=False) if t.state.name in ("COMPLETE", "PRUNED")
    ]
    if not finished:
        return []  # nothing to draw yet: no empty charts
    complete = sum(t.state.name == "COMPLETE" for t in finished)
    written = []
    for stem, function, options in _plots(study):
        if stem == "param_importances" and complete < 2:
            continue  # Optuna would draw equal importances: noise, not information
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # experimental API, few-trial notes
                figure = getattr(html_plots, function)(study, **options)
                axes = getattr(png_plots, function)(study, **options)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            logger.debug("plot %s skipped: %s", stem, exc)
            continue
        if stem == "intermediate_values":
            _mark_pruned(study, figure, axes)
        figure.write_html(folder / f"{stem}.html", include_plotlyjs=True)
        axes.figure.savefig(folder / f"{stem}.png", dpi=100, bbox_inches="tight")
        plt.close(axes.figure)
        written.append(stem)
    return written


def _plots(study: optuna.Study) -> list[tuple[str, str, dict[str, Any]]]:
    """(file stem, function, options) of each plot: a multi-objective study's plots
    show its validation metric, and it gets a Pareto front plot (2 or 3 objectives)."""
    if len(study.directions) == 1:
        return [(stem, function, {}) for stem, function in PLOTS.items()]
    record = StudyRecord.read(study)
    on_metric = {"target": score, "target_name": record.monitor if record else "value"}
    plots = [  # no intermediate values: Optuna takes no reports in such a study
        (stem, function, on_metric)
        for stem, function in PLOTS.items()
        if stem != "intermediate_values"
    ]
    return [*plots, ("pareto_front", "plot_pareto_front", {})]


def write_front(study: optuna.Study, path: Path) -> None:
    """The Pareto front as CSV: trial, then each objective, best metric first."""
    record = StudyRecord.of(study)
    rows = pareto_front(study, record.objective(study))
    names = ["trial", *record.objective(study).names]
    lines = [",".join(names), *(",".join(str(row[n]) for n in names) for row in rows)]
    path.write_text("\n".join(lines) + "\n")


def _mark_pruned(study: optuna.Study, figure: Any, axes: Any) -> None:
    """Learning curves: a pruned trial's curve is dotted and ends in a cross, so the cut
    shows; complete trials stay solid."""
    pruned = {
        f"Trial{t.number}" for t in study.get_trials(deepcopy=False) if t.state.name == "PRUNED"
    }
    for trace in figure.data:
        if trace.name in pruned:
            trace.update(line={"dash": "dot"}, marker={"symbol": "x", "size": 9})
            trace.name = f"{trace.name} (pruned)"
    for line in axes.get_lines():
        if line.get_label() in pruned:
            line.set_linestyle(":")
            xs, ys = line.get_data()
            if len(xs):
                axes.plot(xs[-1:], ys[-1:], "x", color=line.get_color(), markersize=8)
            line.set_label(f"{line.get_label()} (pruned)")
    record = StudyRecord.read(study)
    metric = record.monitor if record else "value"
    title = "Learning curves (dotted, ending in x: pruned)"
    figure.update_layout(title=title, xaxis_title="epoch", yaxis_title=metric)
    axes.set_title(title)
    axes.set_xlabel("epoch")
    axes.set_ylabel(metric)
    if pruned:
        axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))  # with the new labels


def write_leaderboard(study: optuna.Study, path: Path) -> None:
    """Every trial as a CSV row, best first: number, state, value, duration, params and
    the attributes automl records (epochs, seconds, seed, reason, fidelity)."""
    frame = study.trials_dataframe(
        attrs=("number", "state", "value", "duration", "params", "user_attrs")
    )
    if frame.empty:
        path.write_text("number,state,value\n")
        return
    # A machine's local path says nothing in a shared report.
    frame = frame.drop(columns=[f"user_attrs_{TrialRecord.MODEL_PATH}"], errors="ignore")
    frame["duration"] = frame["duration"].dt.total_seconds().round(2)
    # Best first: the order of `automl show` (`leaderboard_rows`), complete trials on top.
    order = [t.number for t in ranked_trials(study)]
    frame["_rank"] = frame["number"].map({number: i for i, number in enumerate(order)})
    frame = frame.sort_values("_rank").drop(columns="_rank")
    frame.to_csv(path, index=False)


def sampled_space(study: optuna.Study) -> dict[str, Any]:
    """Each parameter any trial sampled, with its Optuna distribution as JSON."""
    from optuna.distributions import distribution_to_json

    found: dict[str, Any] = {}
    for trial in study.get_trials(deepcopy=False):
        for name, distribution in trial.distributions.items():
            found.setdefault(name, json.loads(distribution_to_json(distribution)))
    return dict(sorted(found.items()))


def _write_json(path: Path, content: dict[str, Any]) -> None:
    path.write_text(json.dumps(content, indent=2, default=str))
