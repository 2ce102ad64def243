"""The search engine: Optuna study, trial loop, trainer and callbacks.

`_study` makes storages, samplers and pruners; `_search` runs the trial loop;
`_trainer` fits one trial; `_callbacks` holds the Keras callbacks it adds; `_observer`
is how front ends hear about progress. Imports TensorFlow: import lazily from the CLI.
"""

from automl.engine._observer import SearchObserver
from automl.engine._search import SearchResult, run_search

__all__ = ["SearchObserver", "SearchResult", "run_search"]
