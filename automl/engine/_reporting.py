"""What the engine shows in MLflow beyond runs: the study report and the champion model.

Refreshed after a trial when the report is due (every `AUTOML_REPORT_EVERY` seconds, see
`automl.settings`) and once at the end of the search, with the final summary.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import optuna

from automl._errors import UsageError
from automl.config import SearchConfig
from automl.data import Dataset
from automl.export import best_trial_or_none, summarize
from automl.objective import score
from automl.record import StudyRecord, registered_trial, set_registered_trial
from automl.tracking import StudyReport, StudyTracker, registered_model_name
from automl.tracking._artifacts import local_model


class StudyPublisher:
    """Keeps the parent run's artifacts and the registered champion up to date.

    Args:
        tracker: The study's tracker.
        config: The search's options.
        data: The dataset (for the model's raw input example).
        out: The search's output folder.
    """

    def __init__(
        self, tracker: StudyTracker, config: SearchConfig, data: Dataset, out: Path
    ) -> None:
        self.tracker, self.config, self.data, self.out = tracker, config, data, out
        self.report = StudyReport(tracker, out / "report")
        self.model_name = registered_model_name(str(config.study))

    def refresh_if_due(self, study: optuna.Study) -> None:
        """After a trial: refresh when the report is older than its interval."""
        if self.tracker.enabled and self.report.due():
            self.refresh(study, summarize(study))

    def refresh(self, study: optuna.Study, summary: dict[str, Any]) -> None:
        """Register a new best model, then rewrite and log the report."""
        if not self.tracker.enabled:
            return
        self.publish_best(study)
        space = {"space": self.config.space, "dataset": self.config.dataset}
        self.report.write(study, summary, space)

    def publish_best(self, study: optuna.Study) -> None:
        """Log and register the best trial's model unless it is registered already.

        The checkpoint is copied first: a later best deletes it, and the upload may wait
        for an unreachable server.
        """
        best = best_trial_or_none(study)
        try:  # another machine's best comes from MLflow's artifact store
            checkpoint = local_model(best) if best else None
        except UsageError:
            checkpoint = None
        if best is None or checkpoint is None or registered_trial(study) == best.number:
            return
        copy = self.out / "published" / f"trial-{best.number}.keras"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(checkpoint, copy)
        objective = StudyRecord.of(study).objective(study)
        facts = {
            "trial": best.number,
            "value": score(best),
            "metric": objective.monitor,
            "direction": objective.direction,
            "study": study.study_name,
        }
        self.tracker.publish_model(copy, self.data.raw_sample(), self.model_name, facts)
        set_registered_trial(study, best.number)
