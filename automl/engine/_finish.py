"""Finish, the last phase: the best model exported and scored on test once, the
scikit-learn yardstick (fitted at setup, `automl.baseline`) reported beside it, the summary written
(with the plan and what each phase spent), the MLflow report refreshed.

A worker exports nothing: the process that created the study does, once every worker is
done.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl.baseline import ahead_by, describe
from automl.engine._checkpoints import kept_trials
from automl.engine._final import choose_final
from automl.engine._limits import Limits
from automl.export import best_trial_or_none, export_best, summarize, write_json
from automl.model_card import write_model_card
from automl.objective import pareto_front
from automl.record import TrialRecord

logger = logging.getLogger("automl")

if TYPE_CHECKING:
    import keras

    from automl.engine._observer import SearchObserver
    from automl.engine._reporting import StudyPublisher
    from automl.engine._setup import Session


def finish(
    session: Session,
    observer: SearchObserver,
    publisher: StudyPublisher | None,
    *,
    explored: float,
) -> tuple[dict[str, Any], keras.Model | None]:
    """Export and score the best model, and publish the report (without a publisher, as
    on a worker: only the summary).

    Args:
        session: The open search.
        observer: Progress events.
        publisher: The MLflow report and champion (None on a worker).
        explored: `time.monotonic()` when the trials ended.

    Returns:
        The summary and the best model (None when no trial completed or on a worker).
    """
    if publisher is None:
        return summarize(session.study), None
    observer.stage("choosing the final model on validation: the best, an ensemble, TTA")
    final = _final(session)
    observer.stage("scoring the final model on the test set")
    out = Path(str(session.config.out))
    extra = {"plan": session.plan.as_dict(), "spent": _spent(session, explored)}
    summary, model = export_best(
        session.study, session.data, out, session.tracker, extra, final=final
    )
    if "final" in summary:
        _log_final(session, summary["final"])
    _yardstick(session, summary)
    if session.objective.multi:
        _front(session, summary)
    observer.stage("writing the study report to MLflow")
    publisher.refresh(session.study, summary)
    if model is not None:
        _write_card(out, summary, model, session)
    summary["spent"] = _spent(session, explored, finished=time.monotonic())
    write_json(out / "summary.json", summary)
    session.tracker.set_tags(session.parent_run, {"automl.spent": _spent_line(summary)})
    return summary, model


def _final(session: Session) -> tuple[keras.Model | None, dict[str, Any]] | None:
    """The final model and its facts, when it is more than the best checkpoint."""
    if session.objective.multi:  # an ensemble would add to every cost: off the front
        return None
    kept = kept_trials(session.study, session.objective)
    best = best_trial_or_none(session.study)  # ties: the trial export calls the best
    kept = sorted(kept, key=lambda t: best is None or t.number != best.number)
    limits = Limits.of(session.config)
    try:
        final = choose_final(kept, session.data, session.objective, session.budget_end, limits)
    except Exception as exc:  # noqa: BLE001 - the best checkpoint is exported as it is
        logger.warning("could not compare an ensemble or TTA with the best model: %s", exc)
        return None
    if final is None:
        return None
    # None: export copies the best trial's checkpoint. Another single trial can win
    # here (a tie on the metric broken by scikit-learn's log loss) and is saved instead.
    as_trained = final.single and best is not None and final.members[0]["trial"] == best.number
    return (None if as_trained else final.model), final.facts()


def _log_final(session: Session, facts: dict[str, Any]) -> None:
    """The final model's members and validation scores on the MLflow parent run."""
    tracker, run = session.tracker, session.parent_run
    tracker.set_tags(run, {"automl.final": facts["description"]})
    scores = facts.get("val_scores", {})
    tracker.log_metrics(run, {f"final_val_{key}": value for key, value in scores.items()})
    weights = {f"final_weight_trial_{m['trial']}": m["weight"] for m in facts["members"]}
    tracker.log_metrics(run, weights)


def _write_card(out: Path, summary: dict[str, Any], model: keras.Model, session: Session) -> None:
    """`MODEL.md` beside `best_model.keras` (`automl.model_card`); a card that cannot be
    written costs the export nothing but a warning."""
    try:
        write_model_card(out, summary, model, session.data)
    except Exception as exc:  # noqa: BLE001 - the model and summary are already written
        logger.warning("could not write %s: %s", out / "MODEL.md", exc)


def _front(session: Session, summary: dict[str, Any]) -> None:
    """A multi-objective study's Pareto front: in the summary (`pareto_front`, best
    metric first), and as the `automl.pareto_front` tag on each complete trial's run."""
    study, objective = session.study, session.objective
    summary["objectives"] = objective.names
    summary["pareto_front"] = pareto_front(study, objective)
    front = {row["trial"] for row in summary["pareto_front"]}
    for trial in study.get_trials(deepcopy=False):
        run = TrialRecord.read(trial).mlflow_run_id
        if run is not None and trial.state.name == "COMPLETE":
            on = "true" if trial.number in front else "false"
            session.tracker.set_tags(run, {"automl.pareto_front": on})


def _yardstick(session: Session, summary: dict[str, Any]) -> None:
    """Put the scikit-learn baseline in the summary and on the MLflow parent run: its
    scores as `baseline_val_*` / `baseline_test_*` metrics, its line as the
    `automl.baseline` tag. It was fitted at setup (see `_setup`): None for images and
    sequences, or when it could not be fitted (that said one warning then)."""
    baseline = session.yardstick
    if baseline is None:
        return
    test = summary["test"]["metrics"]
    line = describe(baseline, test)
    summary["baseline"] = {**baseline, "line": line, "exported": False}
    key = baseline["metric"]
    if key in test and key in baseline["test"]:  # > 0: the search earned its time
        summary["baseline"]["search_ahead_by"] = ahead_by(test[key], baseline["test"][key], key)
    tracker, run = session.tracker, session.parent_run
    for part in ("val", "test"):
        tracker.log_metrics(run, {f"baseline_{part}_{k}": v for k, v in baseline[part].items()})
    tracker.log_metrics(run, {"baseline_seconds": baseline["seconds"]})
    tracker.set_tags(run, {"automl.baseline": line})
    logger.info(line)


def _spent(session: Session, explored: float, finished: float | None = None) -> dict[str, float]:
    """Seconds per phase of this run (finish and total once it is over)."""
    measure = session.plan.measure_s
    spent = {
        "setup_s": session.ready - session.started - measure,
        "measure_s": measure,
        "trials_s": explored - session.ready,
        "finish_s": 0.0 if finished is None else finished - explored,
    }
    spent["total_s"] = (finished or explored) - session.started
    return {key: round(value, 2) for key, value in spent.items()}


def _spent_line(summary: dict[str, Any]) -> str:
    spent = summary["spent"]
    return ", ".join(f"{key.removesuffix('_s')} {value:.0f} s" for key, value in spent.items())
