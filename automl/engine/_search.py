"""`run_search`: one search, phase after phase.

    setup    (_setup)    resolve the config, load the data, open the study and MLflow
    explore  (_explore)  trials until the budget is spent, on every worker
    finish   (_finish)   export the best model, score it on test, write the report

Each phase lives in its own module; this one only strings them together and makes sure
that, however the search ends, workers are stopped and MLflow runs are closed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from automl import settings
from automl.engine._explore import explore
from automl.engine._fidelity import subset_indices
from automl.engine._finish import finish
from automl.engine._interrupt import graceful_interrupt
from automl.engine._memory import MemoryWatch
from automl.engine._objective import TrialContext, TrialObjective
from automl.engine._observer import SearchObserver
from automl.engine._reporting import StudyPublisher
from automl.engine._result import SearchResult
from automl.engine._setup import Session, open_session
from automl.engine._study import count_finished
from automl.engine._workers import MIN_WORKER_SECONDS, WorkerPool
from automl.export import best_value
from automl.record import StudyRecord

if TYPE_CHECKING:
    from collections.abc import Callable

    import keras

    from automl.config import SearchConfig
    from automl.data import Dataset
    from automl.spaces import Space


def run_search(
    config: SearchConfig,
    observer: SearchObserver | None = None,
    *,
    space: Space | None = None,
    data: Dataset | None = None,
    worker: bool = False,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> SearchResult:
    """Run (or resume) one search as `config` says.

    Args:
        config: The options; `config.space` and `config.dataset` name what to search
            unless `space` / `data` are given as objects. Never changed.
        observer: Receives progress events.
        space: A resolved space (a user's function or HyperModel), instead of a name.
        data: An in-memory dataset, instead of a built-in name.
        worker: Join the existing study as one more worker (`automl worker`): attach to
            its MLflow parent run, run trials until the shared budget is spent, export
            nothing.
        callbacks: Keras callbacks added to every trial's `fit`.

    Raises:
        UsageError: For unknown names, unreachable URLs, or a space whose ranges or
            config are wrong, before any training; or when the first trials all fail in
            the space itself.
    """
    # The timeout is wall-clock time for the whole run: setup (MLflow's and Optuna's
    # database creation, data loading, the space check) comes out of the budget too.
    started = time.monotonic()
    observer = observer or SearchObserver()
    session = open_session(config, observer, space=space, data=data, worker=worker, started=started)
    deadline = session.deadline
    out = Path(str(session.config.out))
    # One process publishes the report and the champion model: the one that created it.
    publisher = (
        None if worker else StudyPublisher(session.tracker, session.config, session.data, out)
    )
    state = "FAIL"
    with graceful_interrupt() as pressed, WorkerPool(session.config, deadline) as pool:
        try:
            objective = TrialObjective(
                _context(session, observer, deadline, pressed, publisher, tuple(callbacks))
            )
            observer.search_started(
                study=str(session.config.study),
                trials=session.config.trials,
                timeout=None if deadline is None else max(0.0, deadline - time.monotonic()),
                done=count_finished(session.study),
                best=best_value(session.study),
            )
            recycled = explore(session.study, objective, pool, worker=worker)
            summary, model = finish(session, observer, publisher, explored=time.monotonic())
            state = "COMPLETE"
        except KeyboardInterrupt:
            state = "INTERRUPTED"
            raise
        finally:
            pool.stop()
            if session.tracker.owns_parent:
                session.tracker.end_run(session.parent_run, state)
            session.tracker.finish(patience=settings.mlflow_patience())
    return SearchResult(session.study, summary, model, recycled=recycled)


def _context(
    session: Session,
    observer: SearchObserver,
    deadline: float | None,
    pressed: Callable[[], bool],
    publisher: StudyPublisher | None,
    callbacks: tuple[keras.callbacks.Callback, ...],
) -> TrialContext:
    """What every trial of this search shares."""
    config, data = session.config, session.data
    subset = None
    if config.subset:
        stratify = data.task == "classification"
        subset = subset_indices(data.y_train, config.subset, config.seed, stratify)
    # Only a process whose study a fresh worker can rebuild may hand over for memory.
    record = StudyRecord.read(session.study)
    can_hand_off = record is not None and not record.in_memory
    return TrialContext(
        config=config,
        data=data,
        spec=session.spec,
        space=session.space,
        objective=session.objective,
        tracker=session.tracker,
        observer=observer,
        deadline=deadline,
        pressed=pressed,
        memory=MemoryWatch(
            settings.recycle_mb() if can_hand_off else 0,
            None if deadline is None else deadline - MIN_WORKER_SECONDS,
        ),
        class_weight=session.class_weight,
        plan=session.plan,
        subset=subset,
        publisher=publisher,
        callbacks=callbacks,
    )
