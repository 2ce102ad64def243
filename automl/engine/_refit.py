"""`automl refit STUDY`: retrain the best trial on train + validation and export it.

The best trial's params, its recorded seed and its best epoch count rebuild the same
model on the same data split; it trains on the training and validation rows together
(no early stopping: the epoch count is already known) and is scored on the test split
next to the trial's own model, so a user sees that the result reproduces. That model is
fetched from MLflow's artifact store when another machine trained it; refit runs without
it (one warning) when the store cannot be reached.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import optuna

from automl._errors import UsageError
from automl.data._batches import fit_inputs
from automl.engine._setup import load_config_data, model_spec
from automl.engine._trainer import SpaceFailed, batch_size_of, build_model
from automl.engine._workers import open_study, worker_config
from automl.export import best_trial_or_none, test_metrics
from automl.models import load_model, save_plain
from automl.objective import score
from automl.record import StudyRecord, TrialRecord
from automl.spaces import HyperParameters
from search_spaces import resolve_space

if TYPE_CHECKING:
    from automl.data import Dataset
    from automl.data._encoding import Encoded

logger = logging.getLogger("automl")


def refit_best(
    study_name: str,
    storage: str | None = None,
    *,
    out: Path | None = None,
    data_dir: Path | None = None,
) -> dict[str, Any]:
    """Refit the study's best trial and write `refit_model.keras` and `refit.json`.

    Returns:
        The content of `refit.json`: trial, seed, epochs, params, and the test metrics of
        the refit model and of the trial's own model.

    Raises:
        UsageError: No complete trial, a space with its own `fit`, or streamed data.
    """
    study, storage = open_study(study_name, storage)
    config = worker_config(study, storage, tracking_uri="none", out=out, data_dir=data_dir)
    best = best_trial_or_none(study)
    if best is None:
        raise UsageError(f"study {study_name!r} has no complete trial to refit yet.")
    data = load_config_data(config)
    space = resolve_space(config.space)
    if space.fit is not None:
        raise UsageError("refit does not support spaces with their own fit(); export instead.")
    objective = StudyRecord.of(study).objective(study)
    facts = TrialRecord.read(best)
    seed = int(facts.seed or 0)
    epochs = int(facts.best_epoch or facts.epochs or 1)

    keras.utils.clear_session(free_memory=True)
    keras.utils.set_random_seed(seed)
    hp = HyperParameters(optuna.trial.FixedTrial(best.params), space.overrides)
    encoded = data.encode(hp)
    if encoded.stream is not None:
        raise UsageError("refit cannot stream image folders yet; use `automl export`.")
    # The schedule the trial trained with decayed over the epochs it was planned for
    # (fitted to time, or a long exploit training), not over the study's cap.
    spec = model_spec(data, encoded, int(facts.planned_epochs or config.max_epochs or 1))
    spec = dataclasses.replace(spec, metric=objective.metric)
    if facts.downsample:  # an exploration trial at lower resolution: refit it as it was
        spec = spec.downsampled(facts.downsample)
    try:
        model = build_model(space, hp, spec, objective)
    except SpaceFailed as exc:  # e.g. a trial of an older automl, before a param existed
        raise UsageError(
            f"refit cannot rebuild trial {best.number} of {study_name!r} ({exc}); export "
            "its own model with `automl export` instead."
        ) from None
    _fit_on_train_and_validation(model, encoded, data, epochs, batch_size_of(hp))
    folder = Path(config.out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "refit_model.keras"
    save_plain(model, path, wrap=encoded.wrap)
    checkpoint = _trial_model(best)
    report = {
        "study": study_name,
        "trial": best.number,
        "seed": seed,
        "epochs": epochs,
        "params": best.params,
        "val_metric": score(best),
        "metric": objective.monitor,
        "test": test_metrics(load_model(path), data),
        "trial_test": test_metrics(load_model(checkpoint), data) if checkpoint else {},
        "model_path": str(path.resolve()),
    }
    (folder / "refit.json").write_text(json.dumps(report, indent=2, default=str))
    return report


def _trial_model(best: optuna.trial.FrozenTrial) -> Path | None:
    """The best trial's own model here (fetched from MLflow if need be), or None."""
    from automl.tracking._artifacts import local_model

    try:
        return local_model(best)
    except UsageError as exc:
        logger.warning("refit goes on without the trial's own model: %s", exc)
        return None


def _fit_on_train_and_validation(
    model: keras.Model, encoded: Encoded, data: Dataset, epochs: int, batch_size: int
) -> None:
    """Train on both splits for a known epoch count (no early stopping to decide it)."""
    x, y = _concat(encoded.x_train, encoded.x_val), np.concatenate([data.y_train, data.y_val])
    model.fit(
        **fit_inputs(x, y, batch_size, shuffle=True),
        epochs=epochs,
        callbacks=[keras.callbacks.TerminateOnNaN()],
        verbose=0,
    )


def _concat(first: Any, second: Any) -> Any:
    """Rows of two splits together: arrays, or dicts of column arrays (tables)."""
    if isinstance(first, dict):
        return {key: np.concatenate([first[key], second[key]]) for key in first}
    return np.concatenate([first, second])
