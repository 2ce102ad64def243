"""`automl show`: a study's leaderboard as a table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from automl.objective import score
from automl.record import StudyRecord, TrialRecord, ranked_trials

if TYPE_CHECKING:
    import optuna

# Params most worth a column, in order; the rest are summarized.
KEY_PARAMS = (
    "optimizer",
    "learning_rate",
    "batch_size",
    "layers",
    "units",
    "stages",
    "filters_1",
    "activation",
    "dropout",
    "batch_norm",
    "augment",
)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _count(value: int | None) -> str:
    """A parameter count as people read it: 1.2M, 35.4k, 900."""
    if value is None:
        return "-"
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.1f}{suffix}"
    return str(value)


def leaderboard_rows(study: optuna.Study, top: int = 20) -> list[dict[str, Any]]:
    """Trials ordered best first (complete ones by value, then the rest by number)."""
    rows = []
    front = {t.number for t in study.best_trials} if len(study.directions) > 1 else set()
    for trial in ranked_trials(study)[:top]:
        facts = TrialRecord.read(trial)
        rows.append(
            {
                "trial": trial.number,
                "state": "FAIL" if facts.counts_as_failed else trial.state.name,
                "value": score(trial),
                "epochs": facts.epochs,
                "seconds": facts.seconds,
                "n_params": facts.n_params,
                "size_mb": facts.size_mb,
                "latency_ms": facts.latency_ms,
                "params": trial.params,
                "reason": facts.reason,
                "pareto_front": trial.number in front,
            }
        )
    return rows


def print_leaderboard(
    study: optuna.Study, *, top: int = 20, console: Console | None = None
) -> None:
    """Print trial, state, validation metric, epochs, seconds, the model's size and
    latency (`automl.footprint`), key params and a failed trial's reason."""
    console = console or Console()
    if not console.is_terminal:  # pipes and logs get the whole table, not 80 columns
        console.width = max(console.width, 160)
    rows = leaderboard_rows(study, top)
    seen = {k for row in rows for k in row["params"]}
    keys = [k for k in KEY_PARAMS if k in seen][:4]
    record = StudyRecord.read(study)
    metric = record.monitor if record else "value"
    table = Table(
        "trial",
        "state",
        metric,
        "epochs",
        "seconds",
        "params",
        "MB",
        "ms/example",
        *keys,
        "note",
        title=f"study {study.study_name}",
        caption="* on the Pareto front (`automl export --trial N` exports any)"
        if len(study.directions) > 1
        else None,
    )
    for row in rows:
        value = f"{row['value']:.4f}" if row["value"] is not None else "-"
        value += " *" if row["pareto_front"] else ""
        table.add_row(
            str(row["trial"]),
            row["state"],
            value,
            _fmt(row["epochs"] or "-"),
            _fmt(row["seconds"] or "-"),
            _count(row["n_params"]),
            _fmt(row["size_mb"] if row["size_mb"] is not None else "-"),
            _fmt(row["latency_ms"] if row["latency_ms"] is not None else "-"),
            *(_fmt(row["params"].get(k, "")) for k in keys),
            row["reason"][:60] if row["state"] == "FAIL" else "",
        )
    console.print(table)
