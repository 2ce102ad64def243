"""Trained models in MLflow's artifact store, where every machine of a study reaches them.

A trial's checkpoint is uploaded to its own MLflow run (`checkpoint/trial-N.keras`) as
soon as it is saved; the trial records where (`model_artifact`, a `runs:/` URI) and on
which tracking store (`model_store`, its password masked). A machine that lacks the file
(another worker trained it) fetches it once into `AUTOML_CACHE_DIR/models/`: local files
are a cache, the artifact store is where the models live.

MLflow's store rather than Optuna's artifact store: every trial already has an MLflow run,
so the model sits next to its params and metrics in the UI, and MLflow already speaks to a
local folder, a tracking server's proxied artifacts (`mlflow server --serve-artifacts`)
and S3 with the same calls and the same credentials as the rest of the logging.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from automl._errors import UsageError

if TYPE_CHECKING:
    import optuna
    from mlflow import MlflowClient

logger = logging.getLogger("automl")

CHECKPOINT_FOLDER = "checkpoint"  # under each trial's MLflow run
_MASK = ":***@"


def store_of(tracking_uri: str) -> str:
    """The tracking URI as a trial records it: a SQLite path made absolute (it must mean
    the same file from any folder), the password masked (see `automl.preflight.mask_url`)."""
    from automl.preflight import mask_url

    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri.removeprefix("sqlite:///")).expanduser().resolve()
        tracking_uri = f"sqlite:///{path}"
    return mask_url(tracking_uri)


def upload_checkpoint(
    client: MlflowClient, tracking_uri: str, run_id: str, path: Path
) -> dict[str, str]:
    """Upload a saved model to the run's `checkpoint/` artifacts.

    Returns:
        The `TrialRecord` facts saying where it went (`model_artifact`, `model_store`).

    Raises:
        Exception: Whatever MLflow raises when the upload fails.
    """
    client.log_artifact(run_id, str(path), CHECKPOINT_FOLDER)
    artifact = f"runs:/{run_id}/{CHECKPOINT_FOLDER}/{path.name}"
    return {"model_artifact": artifact, "model_store": store_of(tracking_uri)}


def local_model(trial: optuna.trial.FrozenTrial) -> Path | None:
    """The trial's saved model on this machine: its own file, else a cached copy, else
    one fetched now from MLflow's artifact store.

    Returns:
        The path, or None when the trial kept no model or never uploaded it.

    Raises:
        UsageError: The artifact store cannot be reached or has no such file; nothing
            is left half-written.
    """
    from automl.record import TrialRecord

    record = TrialRecord.read(trial)
    if record.model_file is not None:
        return record.model_file
    if not record.model_artifact:
        return None
    cached = cache_path(record.model_artifact)
    if cached.is_file():
        return cached
    return _fetch(record.model_artifact, record.model_store or "", cached, trial.number)


def cache_path(artifact: str) -> Path:
    """Where a fetched model is kept: `AUTOML_CACHE_DIR/models/<run id>/<file>`."""
    from automl import settings

    run_id, _, name = artifact.removeprefix("runs:/").partition("/")
    return settings.cache_dir() / "models" / run_id / Path(name).name


def _fetch(artifact: str, store: str, target: Path, number: int) -> Path:
    """Download `artifact` to `target` through a temporary folder beside it, then move it
    into place, so a failed or killed download leaves nothing behind."""
    import mlflow

    from automl.tracking._outbox import limit_http_retries

    uri = tracking_uri_for(store, number)
    if uri.startswith(("http://", "https://")):
        limit_http_retries()  # MLflow's own retries would hold `export` for minutes
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as folder:
            got = mlflow.artifacts.download_artifacts(
                artifact_uri=artifact, dst_path=folder, tracking_uri=uri
            )
            if not Path(got).is_file():
                raise FileNotFoundError(f"{artifact} is not a file")
            os.replace(got, target)
    except Exception as exc:  # noqa: BLE001 - unreachable, refused, missing: all one answer
        raise UsageError(
            f"cannot fetch the model of trial {number} from the MLflow artifact store of "
            f"{store} ({_reason(exc, uri, store)}); it is not on this machine: check that the "
            f"tracking server runs and is reachable from here (and its credentials), or run "
            f"this on the machine that trained the trial."
        ) from None
    logger.info("fetched the model of trial %d from %s", number, store)
    return target


def tracking_uri_for(store: str, number: int) -> str:
    """The tracking URI to fetch from: the recorded one, or, when its password was masked,
    this machine's own (`--tracking-uri`, `$AUTOML_TRACKING_URI`, `$MLFLOW_TRACKING_URI`)
    when it names the same store.

    Raises:
        UsageError: No store recorded, or a masked one this machine has no password for.
    """
    from automl import settings

    if not store:
        raise UsageError(
            f"the model of trial {number} is not on this machine and its MLflow store is "
            f"not recorded; run this on the machine that trained the trial."
        )
    if _MASK not in store:
        return store
    own = settings.tracking_uri()
    if own is not None and store_of(own) == store:
        return own
    raise UsageError(
        f"the model of trial {number} is in the MLflow artifact store of {store}, whose "
        f"password this machine lacks; set AUTOML_TRACKING_URI to that URI with its password."
    )


def _reason(exc: BaseException, uri: str, store: str) -> str:
    """The first line of an MLflow error, with no password in it."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.replace(uri, store)[:300]
