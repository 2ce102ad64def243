"""Workers on the search's host take its plan instead of measuring and splitting again."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
import time

import optuna

from automl.engine import _shared_plan
from automl.engine._phases import make_split
from automl.engine._plan import Plan
from automl.engine._shared_plan import adopt_plan, share_plan
from automl.engine._timing import Speed
from automl.record import search_plan, set_search_plan
from tests.conftest import sqlite_url

SPEED = Speed(
    family="cnn",
    fit_overhead_s=2.5,
    forward_s=0.01,
    step_per_forward=3.0,
    val_per_forward=1.0,
    epoch_overhead_s=0.3,
    epoch_s=16.0,
    batch_size=128,
)


def _leader_plan(budget_s: float = 1600.0) -> Plan:
    """A first process's plan as `make_plan` leaves it: measured, split, finish kept."""
    deadline = time.monotonic() + budget_s
    split = make_split(budget_s, SPEED.fit_overhead_s + SPEED.epoch_s, 100.0, deadline)
    assert split is not None
    return Plan(
        speeds={"cnn": SPEED},
        max_epochs=6,
        deadline=deadline,
        measure_s=12.0,
        budget_s=budget_s,
        split=split,
        too_slow={"transformer": 95.0},
        finish_s=20.0,
        explore_downsample=2,
        unmeasured=("resnet",),
        unneeded=("rnn",),
        grown=dataclasses.replace(SPEED, epoch_s=40.0),
    )


def test_a_worker_on_the_same_host_takes_the_search_plan_on_its_own_clock(tmp_path):
    storage = sqlite_url(tmp_path / "automl.db")
    study = optuna.create_study(study_name="s", storage=storage)
    leader = _leader_plan()
    share_plan(study, leader)
    # Another process: its monotonic clock has another origin, wall-clock time does not.
    script = textwrap.dedent(f"""
        import json, time, optuna
        from automl.engine._shared_plan import adopt_plan
        plan = adopt_plan(optuna.load_study(study_name="s", storage={storage!r}), None)
        to_wall = time.time() - time.monotonic()
        print(json.dumps({{
            "speeds": {{f: s.epoch_s for f, s in plan.speeds.items()}},
            "deadline": plan.deadline + to_wall,
            "exploit_from": plan.split.exploit_from + to_wall,
            "run": plan.split.run, "exploit_s": plan.split.exploit_s,
            "measure_s": plan.measure_s, "downsample": plan.explore_downsample,
            "too_slow": plan.too_slow, "unmeasured": plan.unmeasured,
            "unneeded": plan.unneeded,
            "grown": plan.speed_of({{}}, grown=True).epoch_s,
        }}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    taken = json.loads(done.stdout.strip().splitlines()[-1])
    to_wall = time.time() - time.monotonic()
    assert taken["speeds"] == {"cnn": 16.0}
    assert abs(taken["deadline"] - (leader.deadline + to_wall)) < 0.5
    assert abs(taken["exploit_from"] - (leader.split.exploit_from + to_wall)) < 0.5
    assert taken["run"] == leader.split.run and taken["exploit_s"] == leader.split.exploit_s
    assert taken["measure_s"] == 0.0 and taken["downsample"] == 2
    assert taken["too_slow"] == {"transformer": 95.0} and taken["unmeasured"] == ["resnet"]
    assert taken["unneeded"] == ["rnn"]
    assert taken["grown"] == 40.0  # wider long trainings are estimated like the leader's


def test_a_worker_with_less_time_keeps_its_own_end():
    study = optuna.create_study()
    share_plan(study, _leader_plan())
    own_end = time.monotonic() + 30.0
    plan = adopt_plan(study, own_end)
    assert plan is not None and plan.deadline == own_end and plan.budget_s <= 30.0
    assert plan.split is not None and plan.split.exploit_from <= own_end  # explores no later
    assert plan.adopted and "measured by the search's first process" in plan.describe()


def test_workers_elsewhere_or_after_the_search_measure_their_own(monkeypatch):
    study = optuna.create_study()
    share_plan(study, _leader_plan())
    assert adopt_plan(study, None) is not None
    monkeypatch.setattr(_shared_plan.socket, "gethostname", lambda: "another-machine")
    assert adopt_plan(study, None) is None  # its speeds are not this machine's
    monkeypatch.undo()
    over = dataclasses.replace(_leader_plan(), deadline=time.monotonic() - 1.0)
    share_plan(study, over)  # a search whose time is over
    assert adopt_plan(study, None) is None
    share_plan(study, _leader_plan())
    share_plan(study, Plan({}, 6, None, 0.0, None))  # a later search without a deadline
    assert adopt_plan(study, None) is None


def test_a_plan_whose_process_is_gone_or_unreadable_is_not_taken():
    """An interrupted search's plan (its process gone) would hand a worker of the
    resumed search the old split and token; another version's plan may not rebuild."""
    study = optuna.create_study()
    share_plan(study, _leader_plan())
    facts = search_plan(study)
    ended = subprocess.Popen(["true"])
    ended.wait()
    set_search_plan(study, facts | {"pid": ended.pid})
    assert adopt_plan(study, None) is None
    speeds = [speed | {"renamed_later": 1.0} for speed in facts["speeds"]]
    set_search_plan(study, facts | {"speeds": speeds})
    assert adopt_plan(study, None) is None
    set_search_plan(study, facts)
    assert adopt_plan(study, None) is not None
