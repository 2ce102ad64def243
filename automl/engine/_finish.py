"""Finish, the last phase: the best model exported and scored on test once, the summary
written, the MLflow report refreshed.

A worker exports nothing: the process that created the study does, once every worker is
done.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl.export import export_best, summarize

if TYPE_CHECKING:
    import keras

    from automl.engine._observer import SearchObserver
    from automl.engine._reporting import StudyPublisher
    from automl.engine._setup import Session


def finish(
    session: Session, observer: SearchObserver, publisher: StudyPublisher | None
) -> tuple[dict[str, Any], keras.Model | None]:
    """Export and score the best model, and publish the report (without a publisher, as
    on a worker: only the summary).

    Returns:
        The summary and the best model (None when no trial completed or on a worker).
    """
    if publisher is None:
        return summarize(session.study), None
    observer.stage("scoring the best model on the test set")
    out = Path(str(session.config.out))
    summary, model = export_best(session.study, session.data, out, session.tracker)
    observer.stage("writing the study report to MLflow")
    publisher.refresh(session.study, summary)
    return summary, model
