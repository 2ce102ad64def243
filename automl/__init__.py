"""automl: hyperparameter and architecture search for Keras 3 on Optuna, tracked in MLflow.

Public API::

    from automl import search
    result = search("digits", trials=10)
    result.summary["test"]["metrics"]["accuracy"], result.best_model

Heavy libraries (TensorFlow, Optuna, MLflow) load on first use, not on import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from automl._errors import TrialFailed, UsageError
from automl.config import SearchConfig

if TYPE_CHECKING:
    from automl.engine import SearchObserver, SearchResult

__version__ = "0.1.0"


def search(dataset: str, *, observer: SearchObserver | None = None, **options: Any) -> SearchResult:
    """Run a search on a built-in dataset.

    Args:
        dataset: A name from `automl.data.DATASETS`.
        observer: Receives progress events (optional).
        **options: Any `SearchConfig` field: `space`, `trials`, `timeout`, `max_epochs`,
            `sampler`, `pruner`, `seed`, `study`, `storage`, `tracking_uri`, `out`,
            `data_dir`, `patience`.

    Returns:
        A `SearchResult` with `study`, `summary`, `best_model` and `best_params`.
    """
    from automl.engine import run_search

    return run_search(SearchConfig(dataset=dataset, **options), observer)


__all__ = ["SearchConfig", "TrialFailed", "UsageError", "__version__", "search"]
