"""The search engine: Optuna study, trial loop, trainer and callbacks.

`_study` makes storages, samplers and pruners; `_search` runs the trial loop;
`_trainer` fits one trial; `_callbacks` holds the Keras callbacks it adds; `_observer`
is how front ends hear about progress. `_search` imports TensorFlow, so it loads on
first use: `automl show` and `automl export` use `_study` without paying for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from automl.engine._observer import SearchObserver

if TYPE_CHECKING:
    from automl.engine._search import SearchResult, run_search


def __getattr__(name: str) -> Any:
    if name in ("SearchResult", "run_search"):
        from automl.engine import _search

        return getattr(_search, name)
    raise AttributeError(f"module 'automl.engine' has no attribute {name!r}")


__all__ = ["SearchObserver", "SearchResult", "run_search"]
