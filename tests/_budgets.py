"""Budgets for real timed searches that must split, sized on this machine today.

A split needs room for `MIN_SPLIT_TRIALS` of the quickest trial, and explores only
beyond what exploitation keeps: `EXPLOIT_KEEPS_FULL_TRAININGS` full trainings, or the
wider long training where the first starting point has one (see
`automl.engine._phases.exploitation_keeps`). This machine's speed drifts 2-3x from day
to day (digits' tabular epoch: 0.3 s one day, 3.3 s another), so a fixed budget that
splits on one day does not on another. The search's own measuring, run first, says what it needs.
"""

from __future__ import annotations

import math
import time

from automl.data import Dataset
from automl.engine._phases import MIN_SPLIT_TRIALS, exploitation_keeps
from automl.engine._plan import FINISH_MAX_SHARE, make_plan
from automl.engine._setup import model_spec
from automl.engine._timing import grown_seconds
from automl.objective import Objective
from search_spaces import resolve_space

EXPLORE_SHARE = 0.4  # of the trials' time, at least: room for several short trials
MARGIN = 1.3  # for a machine whose speed changes between the measure and the search


def seconds_for_a_split(
    least_s: float, data: Dataset, space: str, max_epochs: int, *, explores: bool = True
) -> int:
    """`least_s`, or the budget that holds a split (`explores`: one with short trials)
    where this machine is slower today: measured as the search measures (the space's
    reference models)."""
    spec = model_spec(data, data.encode(None), max_epochs)
    objective = Objective.for_task(data.task, None, ())
    deadline = time.monotonic() + 3600
    plan = make_plan(
        resolve_space(space), data, spec, objective, seed=0, deadline=deadline, timeout=3600
    )
    quickest, full = plan.shortest_trial_s(), plan.full_trial_s()
    trials_s = 2 * MIN_SPLIT_TRIALS * quickest
    if explores:
        kept_s, _ = exploitation_keeps(math.inf, full, *grown_seconds(plan.grown))
        trials_s = max(trials_s, kept_s / (1 - EXPLORE_SHARE))
    needed = MARGIN * (plan.measure_s + trials_s / (1 - FINISH_MAX_SHARE))
    return max(math.ceil(least_s), math.ceil(needed))
