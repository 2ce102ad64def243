"""The search's plan, shared with its workers on the same machine.

A worker (`--jobs`, a fresh process that took over for memory, `automl worker`) used to
measure every family again and split the time left again, under whatever load the
search's other processes put on the machine. At 165 T on CIFAR-10 a recycled worker
measured the CNN at 57 s/epoch where the search had measured 16 s, and its new split
left the recipe's long training 9 epochs instead of about 24.

So the search's first process stores its plan in the study: its measured speeds, its
split and its deadline, the clock readings as wall-clock time (`time.monotonic()` means
nothing in another process). A worker on the same host takes that plan whole, back on
its own monotonic clock: the same speeds, the same end of exploration, the same time
kept for the finish. A worker on another host measures its own machine, and so does
one that finds the plan's process gone (a search that ended or was interrupted; a
resumed one shares its own plan once it has measured) or its deadline past.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from typing import Any

import optuna

from automl.engine._phases import Split
from automl.engine._plan import Plan
from automl.engine._timing import Speed
from automl.record import search_plan, set_search_plan


def share_plan(study: optuna.Study, plan: Plan) -> None:
    """Store the first process's plan for its workers; a plan not fitted to time
    (nothing measured, or no deadline) clears what an earlier search shared."""
    if not plan.fits_to_time or plan.deadline is None:
        set_search_plan(study, None)
        return
    split = None
    if plan.split is not None:
        split = dataclasses.asdict(plan.split) | {"exploit_from": _wall(plan.split.exploit_from)}
    set_search_plan(
        study,
        {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "speeds": [dataclasses.asdict(speed) for speed in plan.speeds.values()],
            "max_epochs": plan.max_epochs,
            "deadline": _wall(plan.deadline),
            "split": split,
            "too_slow": plan.too_slow,
            "unmeasured": list(plan.unmeasured),
            "unneeded": list(plan.unneeded),
            "finish_s": plan.finish_s,
            "explore_downsample": plan.explore_downsample,
            "grown": dataclasses.asdict(plan.grown) if plan.grown else None,
        },
    )


def adopt_plan(study: optuna.Study, deadline: float | None) -> Plan | None:
    """The plan the search's first process shared, on this process's clock, for a worker
    on the same host while that plan's time lasts; else None (the worker measures).

    Args:
        study: The study the worker joined.
        deadline: The worker's own deadline (`time.monotonic()`), if it has one: the
            adopted plan ends no later.
    """
    facts = search_plan(study)
    if not facts or facts.get("host") != socket.gethostname() or not _alive(facts.get("pid")):
        return None
    try:
        return _rebuild(facts, deadline)
    except (KeyError, TypeError, ValueError):  # shared by another version of automl
        return None


def _rebuild(facts: dict[str, Any], deadline: float | None) -> Plan | None:
    """The shared plan on this process's clock, ending by `deadline`; None once over."""
    shared_end = _monotonic(facts["deadline"])
    end = shared_end if deadline is None else min(deadline, shared_end)
    now = time.monotonic()
    if end <= now:
        return None
    split = facts["split"]
    if split is not None:  # exploration ends by this worker's end too
        split = Split(**(split | {"exploit_from": min(end, _monotonic(split["exploit_from"]))}))
    return Plan(
        speeds={s["family"]: Speed(**s) for s in facts["speeds"]},
        max_epochs=int(facts["max_epochs"]),
        deadline=end,
        measure_s=0.0,
        budget_s=end - now,
        split=split,
        too_slow=dict(facts["too_slow"]),
        finish_s=float(facts["finish_s"]),
        explore_downsample=int(facts["explore_downsample"]),
        unmeasured=tuple(facts["unmeasured"]),
        unneeded=tuple(facts.get("unneeded", ())),  # shared by an older version: none
        adopted=True,
        grown=Speed(**facts["grown"]) if facts.get("grown") else None,
    )


def _alive(pid: Any) -> bool:
    """Whether process `pid` of this host still runs (the search that shared its plan)."""
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it runs
        return True
    return True


def _wall(monotonic: float) -> float:
    """A `time.monotonic()` reading of this process as wall-clock time."""
    return time.time() + (monotonic - time.monotonic())


def _monotonic(wall: float) -> float:
    """A wall-clock time on this process's `time.monotonic()` clock."""
    return time.monotonic() + (wall - time.time())
