"""automl: hyperparameter and architecture search for Keras 3 on Optuna, tracked in MLflow.

Public API::

    from automl import search
    result = search("digits", trials=10)                  # a built-in space and dataset
    result = search(build, dataset="digits", trials=20)   # your keras-tuner build(hp)
    result.best_params, result.best_value, result.best_model, result.study

    from automl import AutoClassifier                     # scikit-learn estimators
    AutoClassifier(trials=5).fit(X, y).predict(X)

Heavy libraries (TensorFlow, Optuna, MLflow, scikit-learn) load on first use, not on
import.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from automl._errors import TrialFailed, UsageError
from automl.config import SearchConfig
from automl.engine import SearchObserver, SearchResult

if TYPE_CHECKING:
    import keras

    from automl.estimators import AutoClassifier, AutoRegressor

__version__ = "0.4.0"


def search(
    space_or_dataset: Any = None,
    /,
    *,
    dataset: Any = None,
    observer: SearchObserver | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    **options: Any,
) -> SearchResult:
    """Run a search.

    `search("digits")` searches a built-in dataset with its default space;
    `search(build, dataset="digits")` searches your space on it.

    Args:
        space_or_dataset: The space (a built-in name, `file.py:build`, a `build(hp)` or
            `build(hp, spec)` function, a `keras_tuner.HyperModel`, or a .toml/.yaml
            space config); or, when `dataset` is not given, the built-in dataset name.
        dataset: A built-in dataset name; a path to a table (.csv, .tsv, .parquet; with
            `target=`, and `text_column=` for texts), an image folder or an `.npz` file;
            an `automl.data.Dataset`; or an `(x, y)` pair of arrays (split with
            `automl.data.from_arrays`).
        observer: Receives progress events (optional).
        callbacks: Keras callbacks added to every trial's `fit` (they see each trial's
            model; a callback should reset its state in `on_train_begin`).
        **options: Any `SearchConfig` field: `space`, `trials`, `timeout`, `max_epochs`,
            `sampler`, `pruner`, `seed`, `study`, `storage`, `tracking_uri`, `out`,
            `data_dir`, `patience`, `target`, `text_column`, `task`, `metric`,
            `class_weight`, `subset`, `jobs`, `max_params`, `max_latency_ms`,
            `objectives`. Their defaults are the CLI's.

    Returns:
        A `SearchResult` with `study`, `summary`, `best_model`, `best_params` and
        `best_value`.

    Raises:
        UsageError: On a bad option, space or dataset, before any training.
    """
    from automl.data import Dataset, from_arrays
    from automl.engine import run_search
    from search_spaces import resolve_space

    if dataset is None:
        dataset, space = space_or_dataset, options.pop("space", None)
    else:
        space = space_or_dataset
        if space is not None and "space" in options:
            raise UsageError("give the space once: positionally or as space=..., not both.")
        space = space if space is not None else options.pop("space", None)
    data = None
    if isinstance(dataset, tuple) and len(dataset) == 2:
        data = from_arrays(*dataset, task=options.get("task"), seed=options.get("seed", 0))
    elif isinstance(dataset, Dataset):
        data = dataset
    elif isinstance(dataset, os.PathLike):
        dataset = os.fspath(dataset)
    elif not isinstance(dataset, str):
        raise UsageError(
            f"dataset must be a built-in name, a path, an automl.data.Dataset or an (x, y) "
            f"pair. Received: dataset={type(dataset).__name__}."
        )
    named = space is None or isinstance(space, str)
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(SearchConfig)})
    if unknown:
        raise UsageError(
            f"search() got unknown options: {', '.join(unknown)}; see "
            f"help(automl.SearchConfig) for the options."
        )
    config = SearchConfig(
        dataset=data.name if data is not None else dataset,
        space=space if named else None,
        **options,
    )
    resolved = None if named else resolve_space(space)
    return run_search(config, observer, space=resolved, data=data, callbacks=callbacks)


def load_model(path: str) -> keras.Model:
    """Load a `.keras` model automl saved (its custom layers and losses registered)."""
    from automl.models import load_model as _load

    return _load(path)


def __getattr__(name: str) -> Any:
    """The estimators import scikit-learn, so they load on first use."""
    if name in ("AutoClassifier", "AutoRegressor"):
        from automl import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module 'automl' has no attribute {name!r}")


__all__ = [
    "AutoClassifier",
    "AutoRegressor",
    "SearchConfig",
    "SearchObserver",
    "SearchResult",
    "TrialFailed",
    "UsageError",
    "__version__",
    "load_model",
    "search",
]
