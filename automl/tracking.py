"""MLflow: one parent run per study, one nested run per trial, batched per-epoch metrics.

The client and run ids are passed explicitly (no implicit active run), so a trial's
logging can never land on the wrong run. Every run this module opens is closed by the
caller's `finally`, so nothing is left RUNNING after an error or Ctrl-C.
"""

from __future__ import annotations

import logging
import math
import platform
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras
    import numpy as np
    from mlflow import MlflowClient

logger = logging.getLogger("automl")

# MLflow's run statuses for each Optuna end state.
_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED", "INTERRUPTED": "KILLED"}


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape results, for the study's parent run."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("keras", "tensorflow", "tensorflow-cpu", "optuna", "mlflow", "scikit-learn"):
        try:
            found[f"version_{name}"] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _artifacts(tracking_uri: str) -> str | None:
    """Keep artifacts beside a SQLite tracking database (`<db folder>/mlartifacts`), not in
    whatever folder the command runs from; servers choose their own."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    folder = Path(tracking_uri.removeprefix("sqlite:///")).expanduser().resolve().parent
    return (folder / "mlartifacts").as_uri()


class StudyTracker:
    """Logs one study to MLflow.

    Args:
        tracking_uri: Where MLflow writes.
        experiment: Experiment name (the study name).
    """

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.client: MlflowClient = MlflowClient(tracking_uri=tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = (
            found.experiment_id
            if found
            else self.client.create_experiment(
                experiment, artifact_location=_artifacts(tracking_uri)
            )
        )
        self.parent_run_id: str | None = None

    def start_study(self, run_id: str | None, name: str, params: Mapping[str, Any]) -> str:
        """Open (or reopen, on resume) the study's parent run and log its params."""
        if run_id is not None:
            try:
                self.client.update_run(run_id, status="RUNNING")
                self.parent_run_id = run_id
                return run_id
            except Exception:  # noqa: BLE001 - run gone (other tracking store): start anew
                logger.warning("MLflow run %s not found; starting a new parent run", run_id)
        run = self.client.create_run(
            self.experiment_id, run_name=name, tags={"automl.role": "study", "automl.study": name}
        )
        self.parent_run_id = run.info.run_id
        self.log_params(self.parent_run_id, params)
        return self.parent_run_id

    def start_trial(self, number: int, study: str) -> str:
        """Create the nested run `trial-<number>` and return its id."""
        assert self.parent_run_id is not None, "start_study must come first"
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial-{number}",
            tags={
                "mlflow.parentRunId": self.parent_run_id,
                "automl.role": "trial",
                "automl.study": study,
                "optuna.trial_number": str(number),
            },
        )
        return run.info.run_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log params in one batch (MLflow takes at most 100 per call)."""
        from mlflow.entities import Param

        items = [Param(str(k), str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[start : start + 100])

    def log_metrics(
        self, run_id: str, metrics: Mapping[str, float], step: int | None = None
    ) -> None:
        """Log finite metrics in one batch call."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(k, float(v), now, step or 0)
            for k, v in metrics.items()
            if v is not None and math.isfinite(float(v))
        ]
        if items:
            self.client.log_batch(run_id, metrics=items)

    def end_run(self, run_id: str, state: str, tags: Mapping[str, Any] | None = None) -> None:
        """Tag the run with its end `state` and close it with the matching MLflow status."""
        from mlflow.entities import RunTag

        all_tags = {"state": state, **(tags or {})}
        try:
            self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in all_tags.items()])
        finally:
            self.client.set_terminated(run_id, status=_STATUS.get(state, "FAILED"))

    def log_model(self, model: keras.Model, example: np.ndarray) -> None:
        """Log the best model as an MLflow Keras model, with its signature, on the parent run.

        MLflow 3.17's Keras flavor fails to write `input_example` (its folder does not exist
        yet when the example is saved), so only the inferred signature is logged.
        """
        import mlflow
        from mlflow.models import infer_signature

        signature = infer_signature(example, model.predict(example, verbose=0))
        # Explicit requirements: MLflow's inference imports the model in a subprocess (~15 s).
        versions = library_versions()
        requirements = [
            f"{name}=={versions[f'version_{name}']}"
            for name in ("keras", "tensorflow", "tensorflow-cpu")
            if f"version_{name}" in versions
        ]

        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(self.tracking_uri)
        try:
            with mlflow.start_run(run_id=self.parent_run_id):
                mlflow.keras.log_model(
                    model, name="best_model", signature=signature, pip_requirements=requirements
                )
        finally:
            mlflow.set_tracking_uri(previous)


class NullTracker(StudyTracker):
    """Logs nothing: for searches run with `tracking_uri=None` (the scikit-learn estimators)."""

    def __init__(self) -> None:  # noqa: D107 - no client, no experiment
        self.tracking_uri = ""
        self.parent_run_id = None

    def start_study(self, run_id: str | None, name: str, params: Mapping[str, Any]) -> str:
        self.parent_run_id = ""
        return ""

    def start_trial(self, number: int, study: str) -> str:
        return ""

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        return None

    def log_metrics(
        self, run_id: str, metrics: Mapping[str, float], step: int | None = None
    ) -> None:
        return None

    def end_run(self, run_id: str, state: str, tags: Mapping[str, Any] | None = None) -> None:
        return None

    def log_model(self, model: keras.Model, example: np.ndarray) -> None:
        return None


def make_tracker(tracking_uri: str | None, experiment: str) -> StudyTracker:
    """A `StudyTracker` for the URI, or a `NullTracker` when it is None."""
    return NullTracker() if tracking_uri is None else StudyTracker(tracking_uri, experiment)
