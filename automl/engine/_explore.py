"""Explore, the trial phase: run trials until the budget is spent.

This process runs trials with Optuna's `optimize`; with `--jobs N` the other workers run
theirs on the same study. A process whose memory grew too much hands over to a fresh
worker. At the end, trials whose worker died are given back to the budget.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import optuna

from automl._errors import TrialFailed
from automl.engine._interrupt import raise_if
from automl.engine._memory import frozen_heap
from automl.engine._study import JOURNAL_PREFIX, budget_spent, fail_stale_trials
from automl.settings import heartbeat_seconds

if TYPE_CHECKING:
    from automl.engine._objective import TrialObjective
    from automl.engine._workers import WorkerPool

logger = logging.getLogger("automl")


def explore(
    study: optuna.Study, objective: TrialObjective, pool: WorkerPool, *, worker: bool
) -> bool:
    """Run this process's trials, start and wait for the other workers.

    Args:
        study: The open study.
        objective: The trial objective (its context holds the budget and the deadline).
        pool: The worker processes of this search.
        worker: This process is a worker itself (it starts no other).

    Returns:
        Whether this process stopped early because its memory grew (a fresh process
        takes its place).
    """
    context = objective.context
    config = context.config
    if config.jobs > 1 and not worker:
        pool.spawn(config.jobs - 1)
    if not budget_spent(study, config.trials):
        # A trial starts even when setup used up the budget, unless the plan knows that
        # no trial fits (then it is not started, and pruned saying so).
        left = None if context.deadline is None else max(1.0, context.deadline - time.monotonic())
        with frozen_heap():
            _optimize(study, objective, timeout=left)
    raise_if(context.pressed)
    retired = context.memory.handing_over and not budget_spent(study, config.trials)
    if retired and not worker:
        logger.warning(
            "memory grew %.0f MB since the first trial (AUTOML_RECYCLE_MB=%g): fresh worker "
            "processes take the next trials; their logs are in %s",
            context.memory.growth,
            context.memory.limit_mb,
            context.out / "workers",
        )
        pool.spawn(1)
    if pool.workers:
        context.observer.stage("waiting for the other workers to finish their trials")
        pool.wait(study, context.observer, context.pressed, objective.start_exploiting_if_due)
    if not worker:
        with frozen_heap():
            _run_leftovers(study, objective)
    return retired


def _optimize(study: optuna.Study, objective: TrialObjective, **limits: float | None) -> None:
    study.optimize(
        objective,
        catch=(TrialFailed,),
        gc_after_trial=True,
        callbacks=[objective.after_trial],
        **limits,
    )


def _run_leftovers(study: optuna.Study, objective: TrialObjective) -> None:
    """Give the budget of trials whose worker died to new trials.

    A dead worker's trial still looks RUNNING until its heartbeat lapses; the loop above
    may have stopped on a budget that counted it. Wait for such trials to end or go stale
    (then they are failed and retried), and run what the budget still allows.
    """
    context = objective.context
    trials = context.config.trials
    if trials is None or str(context.config.storage).startswith(JOURNAL_PREFIX):
        return  # no count to fill, or no heartbeats (journal files)
    give_up = time.monotonic() + 4 * heartbeat_seconds()
    while time.monotonic() < min(give_up, context.deadline or give_up):  # within --timeout
        raise_if(context.pressed)
        if objective.out_of_time or context.plan.out_of_time():
            return
        fail_stale_trials(study)
        if not budget_spent(study, trials):
            _optimize(study, objective, n_trials=1)
            give_up = time.monotonic() + 4 * heartbeat_seconds()
        elif not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            return
        else:
            time.sleep(1.0)
