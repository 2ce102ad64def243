"""scikit-learn estimators: `AutoClassifier` and `AutoRegressor`.

Each `fit` runs one search on the arrays it is given (validation carved from them, no
test split: scikit-learn's own tools score the estimator) and keeps the best model in
memory. Constructors only store their arguments, so `clone`, `Pipeline`, `GridSearchCV`
and `cross_val_score` work as with any scikit-learn estimator.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

from automl._errors import UsageError


class _AutoEstimator(BaseEstimator):
    """The shared `fit`: one search per call.

    Args:
        space: Any space `automl.search` takes (default: "auto").
        trials: Trials per fit.
        timeout: Seconds (or "10m") per fit, or None.
        max_epochs: Epoch cap per trial.
        sampler: Optuna sampler name.
        pruner: Optuna pruner name.
        seed: Seed of the sampler, the validation split and the weights.
        storage: Optuna storage URL; None keeps the study in a temporary SQLite file.
        tracking_uri: MLflow tracking URI; None logs nothing.
        out: Folder for checkpoints and `summary.json`; None uses a temporary one.
        study: Study name; None derives one.
        verbose: Show Optuna's per-trial log lines.
    """

    _task = ""

    def __init__(
        self,
        space: Any = "auto",
        *,
        trials: int = 10,
        timeout: float | str | None = None,
        max_epochs: int = 30,
        sampler: str = "tpe",
        pruner: str = "hyperband",
        seed: int | None = 0,
        storage: str | None = None,
        tracking_uri: str | None = None,
        out: str | Path | None = None,
        study: str | None = None,
        verbose: bool = False,
    ) -> None:
        self.space = space
        self.trials = trials
        self.timeout = timeout
        self.max_epochs = max_epochs
        self.sampler = sampler
        self.pruner = pruner
        self.seed = seed
        self.storage = storage
        self.tracking_uri = tracking_uri
        self.out = out
        self.study = study
        self.verbose = verbose

    def fit(self, X: Any, y: Any) -> _AutoEstimator:  # noqa: N803 - scikit-learn's names
        """Search for the best model on `X`, `y`.

        Returns:
            self, with `best_model_`, `best_params_`, `best_score_` and `study_`.

        Raises:
            UsageError: When the search finds no model that completes.
        """
        import optuna

        from automl import search
        from automl.data import from_arrays

        X, y = check_X_y(X, y, allow_nd=True, dtype=None, y_numeric=self._task == "regression")
        data = from_arrays(X, y, task=self._task, test_split=False, seed=self.seed)
        workdir = Path(tempfile.mkdtemp(prefix="automl-fit-")) if self.out is None else None
        out = Path(self.out) if self.out is not None else workdir
        storage = self.storage or f"sqlite:///{out / 'automl.db'}"
        verbosity = optuna.logging.get_verbosity()
        if not self.verbose:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            result = search(
                self.space,
                dataset=data,
                trials=self.trials,
                timeout=self.timeout,
                max_epochs=self.max_epochs,
                sampler=self.sampler,
                pruner=self.pruner,
                seed=self.seed,
                storage=storage,
                tracking_uri=self.tracking_uri,
                out=out,
                study=self.study,
            )
            if result.best_model is None:
                raise UsageError(
                    f"no trial completed in {self.trials} trials; raise trials or timeout."
                )
            # Keep the study readable after the temporary folder is gone.
            memory = optuna.storages.InMemoryStorage()
            name = result.study.study_name
            optuna.copy_study(from_study_name=name, from_storage=storage, to_storage=memory)
            self.study_ = optuna.load_study(study_name=name, storage=memory)
        finally:
            optuna.logging.set_verbosity(verbosity)
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
        self.best_model_ = result.best_model
        self.best_params_ = result.best_params
        self.best_score_ = result.summary["best"]["val_metric"]
        self.n_features_in_ = X.shape[1] if X.ndim == 2 else None
        if self._task == "classification":
            self.classes_ = np.unique(y)
        return self

    def _raw_predict(self, X: Any) -> np.ndarray:  # noqa: N803
        check_is_fitted(self, "best_model_")
        X = check_array(X, allow_nd=True, dtype=None)
        return np.asarray(self.best_model_.predict(X, batch_size=512, verbose=0))


class AutoClassifier(ClassifierMixin, _AutoEstimator):
    """A classifier whose model is found by an automl search at `fit` time.

    `classes_` holds the labels in sorted order; `predict_proba` columns follow it.
    """

    _task = "classification"

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        """Class probabilities, one column per entry of `classes_`."""
        return self._raw_predict(X)

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        """The most probable label of each row."""
        probabilities = self.predict_proba(X)  # checks fitted first
        return self.classes_[np.argmax(probabilities, axis=-1)]


class AutoRegressor(RegressorMixin, _AutoEstimator):
    """A regressor whose model is found by an automl search at `fit` time."""

    _task = "regression"

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        """The predicted value of each row."""
        return self._raw_predict(X).reshape(-1)
