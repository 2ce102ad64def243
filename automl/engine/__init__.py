"""The search engine: one search as phases, on an Optuna study.

    _search     run_search: setup -> explore -> finish, and the cleanup however it ends
    _setup      setup: resolve the config, load the data, open the study and MLflow run
    _timing     time each family's reference model here (the plan's measurements)
    _plan       plan: fit each trial's epochs to time, split exploring from exploiting
    _explore    explore: trials until the budget is spent, on every worker
    _objective  one trial end to end (TrialContext, TrialObjective); between trials:
                budget, memory hand-over, Ctrl-C, a broken space
    _trainer    build and fit one model: early stopping, pruning, NaN, the deadline
    _callbacks  the Keras callbacks of every fit; pruning is decided in TrialPruning
    _finish     finish: export the best model, score it on test, refresh the report
    _study      Optuna storages, samplers, pruners and budget counts
    _workers    worker processes: spawned, followed, replaced when they retire
    _fidelity   --subset: low-fidelity trials and promotion of the best
    _reporting  the MLflow study report and the champion model
    _refit      `automl refit`: the best trial retrained on train + validation

`_search` imports TensorFlow, so it loads on first use: `automl show` and `automl export`
use `_study` without paying for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from automl.engine._observer import SearchObserver
from automl.engine._result import SearchResult

if TYPE_CHECKING:
    from automl.engine._search import run_search


def __getattr__(name: str) -> Any:
    if name == "run_search":
        from automl.engine import _search

        return _search.run_search
    raise AttributeError(f"module 'automl.engine' has no attribute {name!r}")


__all__ = ["SearchObserver", "SearchResult", "run_search"]
