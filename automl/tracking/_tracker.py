"""MLflow runs: one parent run per study, one nested run per trial, batched metrics.

The client and run ids are passed explicitly (no implicit active run), so a trial's
logging can never land on the wrong run. Every run this module opens is closed by the
caller's `finally`, so nothing is left RUNNING after an error or Ctrl-C. Study artifacts
live in `_report`, the model registry in `_registry`, delivery in `_outbox`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import platform
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl.tracking._outbox import Outbox, limit_http_retries

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger("automl")

# MLflow's run statuses for each Optuna end state.
_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED", "INTERRUPTED": "KILLED"}

# Epochs that end within this of the last delivery share one MLflow call: each call is
# a database transaction (~10 ms on SQLite, a tenth of a small dataset's epoch; see
# benchmarks/overhead.py). Epochs slower than this are still logged as each one ends.
EPOCH_FLUSH_SECONDS = 1.0
_MAX_METRICS_PER_CALL = 1000  # MLflow's log_batch limit


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

    Every call after `start_study` goes through an `Outbox`, so an MLflow server that goes
    away mid-search delays the logging but never the search: trial runs get local keys
    until the server has created them.

    Args:
        tracking_uri: Where MLflow writes.
        experiment: Experiment name (the study name).
    """

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        from mlflow import MlflowClient

        from automl.preflight import mask_url

        if tracking_uri.startswith(("http://", "https://")):
            limit_http_retries()
        self.tracking_uri = tracking_uri
        self.client: MlflowClient = MlflowClient(tracking_uri=tracking_uri)
        self.outbox = Outbox(mask_url(tracking_uri))
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = (
            found.experiment_id
            if found
            else self.client.create_experiment(
                experiment,
                artifact_location=_artifacts(tracking_uri),
                tags={"mlflow.experimentKind": "custom_model_development"},
            )
        )
        self.parent_run_id: str | None = None
        self.owns_parent = True  # False for a worker attached to the study's parent run
        self._epochs: dict[str, list[Any]] = {}  # run id -> epoch metrics not yet sent
        self._epochs_sent: dict[str, float] = {}  # run id -> when they last went out

    enabled = True

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

    def attach(self, run_id: str | None, name: str) -> str:
        """Log under an existing parent run without reopening it (another worker owns
        it); start a new parent run when this tracking store does not have it."""
        if run_id:
            try:
                self.client.get_run(run_id)
                self.parent_run_id, self.owns_parent = run_id, False
                return run_id
            except Exception:  # noqa: BLE001 - another tracking store: a parent of our own
                logger.warning("MLflow run %s not found here; starting a parent run", run_id)
        return self.start_study(None, name, {"role": "worker"})

    def start_trial(self, number: int, study: str) -> str:
        """Create the nested run `trial-<number>`; returns its id (or a local key for it)."""
        assert self.parent_run_id is not None, "start_study must come first"
        key = self.outbox.new_key()
        tags = {
            "mlflow.parentRunId": self.parent_run_id,
            "automl.role": "trial",
            "automl.study": study,
            "optuna.trial_number": str(number),
        }

        def create(_: Callable[[str], str]) -> None:
            run = self.client.create_run(self.experiment_id, run_name=f"trial-{number}", tags=tags)
            self.outbox.bind(key, run.info.run_id)

        self.outbox.send(create)
        return self.outbox.resolve(key)

    def created(self, run_id: str) -> bool:
        """True when `run_id` is a run the server created, not a local key for one."""
        return bool(run_id) and not self.outbox.is_local(run_id)

    def close_lost_trial(self, study: Any, trial: Any) -> None:
        """For Optuna's failed-trial callback: close the MLflow run of a trial whose worker
        died (it recorded the run id as `mlflow_run_id`)."""
        from automl.record import TrialRecord

        run_id = TrialRecord.read(trial).mlflow_run_id
        if run_id:
            reason = "worker lost (no heartbeat); retried as a new trial"
            self.end_run(run_id, "FAIL", {"reason": reason})

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log params in one batch (MLflow takes at most 100 per call)."""
        from mlflow.entities import Param

        items = [Param(str(k), str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            chunk = items[start : start + 100]
            self.outbox.send(
                lambda resolve, c=chunk: self.client.log_batch(resolve(run_id), params=c)
            )

    def log_metrics(
        self, run_id: str, metrics: Mapping[str, float], step: int | None = None
    ) -> None:
        """Log finite metrics in one batch call (after the run's pending epochs)."""
        self._send_epochs(run_id)
        self._send_metrics(run_id, _metric_items(metrics, step))

    def log_epoch(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        """Log one epoch's finite metrics, stamped now; epochs that end within
        `EPOCH_FLUSH_SECONDS` of the last call go out together (`end_run` sends the rest)."""
        self._epochs.setdefault(run_id, []).extend(_metric_items(metrics, step))
        if time.monotonic() - self._epochs_sent.get(run_id, -math.inf) >= EPOCH_FLUSH_SECONDS:
            self._send_epochs(run_id)

    def _send_epochs(self, run_id: str) -> None:
        pending = self._epochs.pop(run_id, [])
        if pending:
            self._epochs_sent[run_id] = time.monotonic()
            self._send_metrics(run_id, pending)

    def _send_metrics(self, run_id: str, items: list[Any]) -> None:
        for start in range(0, len(items), _MAX_METRICS_PER_CALL):
            chunk = items[start : start + _MAX_METRICS_PER_CALL]
            self.outbox.send(
                lambda resolve, c=chunk: self.client.log_batch(resolve(run_id), metrics=c)
            )

    def end_run(self, run_id: str, state: str, tags: Mapping[str, Any] | None = None) -> None:
        """Tag the run with its end `state` and close it with the matching MLflow status."""
        from mlflow.entities import RunTag

        self._send_epochs(run_id)
        self._epochs_sent.pop(run_id, None)
        all_tags = [RunTag(k, str(v)) for k, v in {"state": state, **(tags or {})}.items()]
        status = _STATUS.get(state, "FAILED")

        def close(resolve: Callable[[str], str]) -> None:
            try:
                self.client.log_batch(resolve(run_id), tags=all_tags)
            finally:
                self.client.set_terminated(resolve(run_id), status=status)

        self.outbox.send(close)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Tag a run (values as text), in one batch."""
        from mlflow.entities import RunTag

        items = [RunTag(str(k), str(v)[:5000]) for k, v in tags.items()]
        self.outbox.send(lambda resolve: self.client.log_batch(resolve(run_id), tags=items))

    def log_artifacts(self, folder: Path, artifact_path: str) -> None:
        """Upload the files of `folder` under `artifact_path` of the parent run."""
        parent = self.parent_run_id
        assert parent is not None, "start_study must come first"
        self.outbox.send(lambda _: self.client.log_artifacts(parent, str(folder), artifact_path))

    def checkpoint_uploader(self, run_id: str) -> Callable[[Path], dict[str, str]] | None:
        """What uploads a trial's saved model to its run now (not through the outbox: the
        trial must know whether it arrived) and returns where it went (`_artifacts`).

        The uploader raises when the run does not exist on the server yet (the server was
        away when the trial started) or the upload fails.
        """

        def upload(path: Path) -> dict[str, str]:
            from automl.tracking._artifacts import upload_checkpoint

            real = self.outbox.resolve(run_id)
            if not self.created(real):
                raise ConnectionError("the trial's MLflow run was not created yet")
            return upload_checkpoint(self.client, self.tracking_uri, real, path)

        return upload

    def publish_model(
        self, model_path: Path, example: Any, registered_name: str, facts: dict[str, Any]
    ) -> None:
        """Log the saved model on the parent run, register it as a version of
        `registered_name` and move `champion` to it if it is the best (`publish_best_model`).
        The file is deleted once delivered."""
        from automl.tracking._registry import publish_best_model

        parent = self.parent_run_id
        assert parent is not None, "start_study must come first"

        def publish(_: Callable[[str], str]) -> None:
            publish_best_model(
                self.tracking_uri, parent, model_path, example, registered_name, facts
            )
            model_path.unlink(missing_ok=True)  # a copy made for the upload
            with contextlib.suppress(OSError):
                model_path.parent.rmdir()  # when no other upload waits

        self.outbox.send(publish)

    def finish(self, patience: float) -> bool:
        """Deliver what waits for the server, for up to `patience` seconds."""
        return self.outbox.drain(patience)


class NullTracker(StudyTracker):
    """Logs nothing: for searches run with `tracking_uri=None` (the scikit-learn estimators)."""

    enabled = False

    def __init__(self) -> None:  # noqa: D107 - no client, no experiment
        self.tracking_uri = ""
        self.parent_run_id = None
        self.owns_parent = True

    def start_study(self, run_id: str | None, name: str, params: Mapping[str, Any]) -> str:
        self.parent_run_id = ""
        return ""

    def attach(self, run_id: str | None, name: str) -> str:
        self.parent_run_id = ""
        return ""

    def start_trial(self, number: int, study: str) -> str:
        return ""

    def created(self, run_id: str) -> bool:
        return False

    def close_lost_trial(self, study: Any, trial: Any) -> None:
        return None

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        return None

    def log_metrics(
        self, run_id: str, metrics: Mapping[str, float], step: int | None = None
    ) -> None:
        return None

    def log_epoch(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        return None

    def end_run(self, run_id: str, state: str, tags: Mapping[str, Any] | None = None) -> None:
        return None

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        return None

    def log_artifacts(self, folder: Path, artifact_path: str) -> None:
        return None

    def checkpoint_uploader(self, run_id: str) -> Callable[[Path], dict[str, str]] | None:
        return None

    def publish_model(
        self, model_path: Path, example: Any, registered_name: str, facts: dict[str, Any]
    ) -> None:
        return None

    def finish(self, patience: float) -> bool:
        return True


def _metric_items(metrics: Mapping[str, float], step: int | None) -> list[Any]:
    """MLflow `Metric`s for the finite values, stamped now."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [
        Metric(k, float(v), now, step or 0)
        for k, v in metrics.items()
        if v is not None and math.isfinite(float(v))
    ]


def make_tracker(tracking_uri: str | None, experiment: str) -> StudyTracker:
    """A `StudyTracker` for the URI, or a `NullTracker` when it is None."""
    return NullTracker() if tracking_uri is None else StudyTracker(tracking_uri, experiment)
