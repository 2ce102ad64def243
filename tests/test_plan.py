"""The plan phase: this machine measured before the first trial, trials fitted to time."""

from __future__ import annotations

import json
import time

import keras
import mlflow
import numpy as np
import optuna
import pytest

import automl
from automl import UsageError
from automl.data import from_arrays, load_dataset
from automl.engine import _phases, _timing
from automl.engine._phases import (
    EXPLOIT_EPOCH_FACTOR,
    EXPLORE_SPARE,
    Window,
    exploit_epoch_cap,
    long_trainings_waiting,
    make_split,
    start_exploiting,
)
from automl.engine._plan import FINISH_FIXED_S, finish_seconds, make_plan
from automl.engine._setup import model_spec
from automl.engine._study import budget_spent, count_finished
from automl.engine._timing import reference_points
from automl.objective import Objective
from automl.record import TrialRecord
from search_spaces import resolve_space
from tests._digits import digits_as
from tests.conftest import mlflow_url, run_cli, sqlite_url

SPEC_EPOCHS: list[int] = []


def recording_build(hp, spec):
    """A small dense space that remembers the epochs each model was built for (its
    learning-rate schedule decays over them)."""
    SPEC_EPOCHS.append(spec.max_epochs)
    units = hp.Int("units", 8, 64, sampling="log")
    inputs = keras.Input(spec.input_shape)
    hidden = keras.layers.Dense(units, activation="relu")(inputs)
    outputs = keras.layers.Dense(spec.num_classes, activation="softmax")(hidden)
    model = keras.Model(inputs, outputs)
    steps = spec.steps_per_epoch(32) * spec.max_epochs
    schedule = keras.optimizers.schedules.CosineDecay(1e-2, decay_steps=steps)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def test_the_plan_measures_each_family_of_the_space():
    data = load_dataset("digits", seed=0)
    spec = model_spec(data, data.encode(None), 40)
    space = resolve_space("auto")
    unlimited = make_plan(space, data, spec, Objective(), seed=0, deadline=None, timeout=None)
    assert not unlimited.speeds and not unlimited.fits_to_time  # nothing to fit: no cost
    assert "up to 40 epochs" in unlimited.describe()
    deadline = time.monotonic() + 3600
    plan = make_plan(space, data, spec, Objective(), seed=0, deadline=deadline, timeout=3600)
    assert set(plan.speeds) == set(reference_points(space, spec))
    speed = next(iter(plan.speeds.values()))
    assert speed.epoch_s > 0 and speed.step_per_forward > 0 and speed.fit_overhead_s >= 0
    assert plan.fits_to_time and plan.epochs_for(speed, 1.0) == 40
    assert plan.epochs_for(speed, 600.0) == 5  # an hour holds 5 epochs of 10 minutes
    # An hour of 1-second epochs: explore with trials no longer than a full training
    # (with exploration's spare), then train the best 2 long (up to 4x the cap).
    assert plan.split is not None and plan.split.exploit_n == 2
    assert plan.split.explore_trial_s <= EXPLORE_SPARE * plan.full_trial_s()
    assert plan.split.exploit_from < deadline - plan.split.exploit_s
    described = plan.describe()
    assert "/epoch" in described and "then the best 2" in described and "160 epochs" in described


@pytest.mark.slow  # 20-50 s on a loaded day: beyond the default suite's 15 minutes
def test_families_too_slow_for_the_budget_are_estimated_not_measured(
    cifar_root, cifar_cache, monkeypatch
):
    monkeypatch.setattr(_timing, "MEASURE_MAX_SHARE", float("inf"))  # the screen decides
    data = load_dataset("cifar10", data_dir=cifar_root, seed=0)
    spec = model_spec(data, data.encode(None), 6)
    space = resolve_space("auto")
    families = list(reference_points(space, spec))
    assert len(families) > 1
    # Half a second: gone once the first family is measured, so every later family's
    # estimate (its forward pass, scaled like the first) cannot fit 3 epochs.
    deadline = time.monotonic() + 0.5
    plan = make_plan(
        space, data, spec, Objective(), seed=0, deadline=deadline, timeout=0.5, refuse=False
    )
    assert list(plan.speeds) == families[:1]
    assert list(plan.too_slow) == families[1:]
    assert all(epoch_s > 0 for epoch_s in plan.too_slow.values())
    assert "too slow for this budget, not measured: " + families[1] in plan.describe()
    assert set(plan.as_dict()["too_slow_epoch_s"]) == set(families[1:])


def test_a_budget_too_small_to_explore_measures_only_the_first_family(monkeypatch):
    """Where the budget holds no more than the full trainings exploitation keeps of the
    first family's reference, nothing is explored: the other families are not measured
    (their trials are planned like the first's), and the plan says why."""
    data = from_arrays(*digits_as("image"), kind="image", name="digits_image")
    spec = model_spec(data, data.encode(None), 6)
    space = resolve_space("auto")
    families = list(reference_points(space, spec))
    assert len(families) > 1
    # An hour is "small" once exploitation keeps a million full trainings.
    monkeypatch.setattr(_phases, "EXPLOIT_KEEPS_FULL_TRAININGS", 1_000_000)
    deadline = time.monotonic() + 3600
    plan = make_plan(space, data, spec, Objective(), seed=0, deadline=deadline, timeout=3600)
    assert list(plan.speeds) == families[:1] and not plan.too_slow and not plan.unmeasured
    assert plan.unneeded == tuple(families[1:])
    assert "budget holds only the first starting point's long training: " + families[1] in (
        plan.describe()
    )
    assert plan.as_dict()["unneeded"] == families[1:]
    assert plan.speed_of({"family": families[1]}) is plan.speeds[families[0]]


@pytest.mark.slow  # 20-50 s on a loaded day: beyond the default suite's 15 minutes
def test_measuring_stops_at_its_share_of_the_budget(cifar_root, cifar_cache, monkeypatch):
    """The first family is always measured; a later one only while measuring it (guessed
    as the largest start-up so far) keeps measuring within its share of the budget."""
    data = load_dataset("cifar10", data_dir=cifar_root, seed=0)
    spec = model_spec(data, data.encode(None), 6)
    space = resolve_space("auto")
    families = list(reference_points(space, spec))
    monkeypatch.setattr(_timing, "MEASURE_MAX_SHARE", 0.0)
    deadline = time.monotonic() + 3600
    plan = make_plan(space, data, spec, Objective(), seed=0, deadline=deadline, timeout=3600)
    assert list(plan.speeds) == families[:1] and not plan.too_slow
    assert plan.unmeasured == tuple(families[1:])
    assert "not measured, to keep measuring under 0% of the budget: " + families[1] in (
        plan.describe()
    )
    assert plan.as_dict()["unmeasured"] == families[1:]
    # Trials of an unmeasured family are planned like the first family measured.
    assert plan.speed_of({"family": families[1]}) is plan.speeds[families[0]]


@pytest.mark.slow  # keeps the default suite under 15 minutes on 2 cores
def test_trials_are_planned_for_the_epochs_that_fit_the_time(tmp_path):
    """With a deadline, each trial is built for the epochs that fit what is left (its
    schedule with them), never more than the cap, and trains no more than that, or
    than what its schedule stretched to (at most twice) when its epochs ran faster."""
    SPEC_EPOCHS.clear()
    timeout_s = 40  # setup and measuring take 8-20 s (machines and days differ 2x)
    # A cap the time never holds: on a quiet machine 40 s held 400 of digits' epochs.
    cap = 4000
    result = automl.search(
        recording_build,
        dataset="digits",
        timeout=f"{timeout_s}s",
        max_epochs=cap,
        patience=cap,
        pruner="none",
        storage=sqlite_url(tmp_path / "a.db"),
        tracking_uri=mlflow_url(tmp_path / "mlflow.db"),
        out=tmp_path / "out",
    )
    trials = result.study.trials
    planned = [TrialRecord.read(t).planned_epochs for t in trials]
    assert all(p is not None and 0 <= p < cap for p in planned)
    assert [p for p in planned if p] == [e for e in SPEC_EPOCHS if e < cap]
    for trial, epochs in zip(trials, planned, strict=True):
        facts = TrialRecord.read(trial)
        stretched = facts.stretched_epochs or 0
        assert (facts.epochs or 0) <= epochs + stretched and stretched <= epochs
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["plan"]["budget_s"] <= timeout_s and summary["plan"]["epoch_s"]
    spent = summary["spent"]
    assert spent["total_s"] == pytest.approx(
        spent["setup_s"] + spent["measure_s"] + spent["trials_s"] + spent["finish_s"], abs=0.1
    )
    assert spent["setup_s"] + spent["measure_s"] + spent["trials_s"] < timeout_s + 5
    client = mlflow.MlflowClient(mlflow_url(tmp_path / "mlflow.db"))
    parent = client.get_run(result.study.user_attrs["mlflow_run_id"])
    assert parent.data.tags["automl.plan"] == summary["plan"]["description"]
    assert "trials" in parent.data.tags["automl.spent"]


@pytest.mark.slow  # keeps the default suite under 15 minutes on 2 cores
def test_a_timeout_too_small_for_one_trial_is_refused_before_anything_exists(tmp_path):
    """One line naming the smallest budget that works here; no study, no MLflow run."""
    with pytest.raises(UsageError, match=r"^timeout leaves .* pass a timeout of \d+s or more\.$"):
        automl.search(
            "digits", timeout=0.01, storage=sqlite_url(tmp_path / "a.db"), out=tmp_path / "o"
        )
    assert not (tmp_path / "a.db").exists() and not (tmp_path / "mlflow.db").exists()
    cli = run_cli("search", "digits", "--timeout", "0.01", cwd=tmp_path)
    assert cli.returncode == 2
    line = cli.stderr.strip().splitlines()[-1]
    assert line.startswith("automl: error: --timeout leaves ") and "pass a --timeout of" in line
    assert not (tmp_path / "automl.db").exists() and not (tmp_path / "mlflow.db").exists()


def test_arrays_of_a_table_shape_are_measured_too():
    """Measuring works on whatever a space trains on: here vectors of a tiny split."""
    x = np.random.default_rng(0).normal(size=(60, 5)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    data = automl.data.from_arrays(x, y, seed=0)
    spec = model_spec(data, data.encode(None), 5)
    deadline = time.monotonic() + 600
    plan = make_plan(
        resolve_space("mlp"), data, spec, Objective(), seed=0, deadline=deadline, timeout=600
    )
    assert next(iter(plan.speeds.values())).epoch_s > 0


def _explored_study(values: list[float]) -> optuna.Study:
    """A study whose exploration trials scored `values` (each its own configuration)."""
    study = optuna.create_study(direction="maximize")
    for number, value in enumerate(values):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0.0, 10.0)})
        trial.suggest_float("x", 0.0, 10.0)
        study.tell(trial, value)
        assert trial.number == number
    return study


@pytest.mark.parametrize(
    ("values", "trained_long"),
    [
        ([0.70, 0.80, 0.795], [1, 2]),  # the runner-up within 2 %: both train long
        ([0.70, 0.80, 0.60], [1]),  # 12 % behind: the best gets all the time
    ],
)
def test_a_second_configuration_trains_long_only_when_it_scored_close(values, trained_long):
    study = _explored_study(values)
    split = make_split(3000.0, quickest_s=10.0, full_s=100.0, deadline=3000.0)
    assert split is not None and split.exploit_n == 2
    assert start_exploiting(study, split) == trained_long
    waiting = [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    assert [TrialRecord.read(t).promoted_from for t in waiting] == trained_long


def test_long_trainings_wait_from_their_enqueuing_until_they_run():
    """What keeps a search's long trainings in its process after its memory grew."""
    study = _explored_study([0.70, 0.80])
    split = make_split(3000.0, quickest_s=10.0, full_s=100.0, deadline=3000.0)
    assert split is not None and not long_trainings_waiting(study, split.run)
    start_exploiting(study, split)
    assert long_trainings_waiting(study, split.run)
    assert not long_trainings_waiting(study, "another search's run")
    trial = study.ask()  # Optuna hands out the waiting configuration first
    assert TrialRecord.read(trial).exploit
    assert not long_trainings_waiting(study, split.run)


def test_a_long_training_is_capped_by_time_when_exploring_cut_its_epochs_short():
    """An exploration trial planned for fewer epochs than the cap never showed how many
    its configuration can use: its long training gets what fits the time."""
    cut_short = exploit_epoch_cap(TrialRecord(planned_epochs=5), max_epochs=6)
    full = exploit_epoch_cap(TrialRecord(planned_epochs=6), max_epochs=6)
    assert full == 6 * EXPLOIT_EPOCH_FACTOR
    assert exploit_epoch_cap(TrialRecord(), max_epochs=6) == full  # not planned to time
    from automl.engine._plan import Plan
    from automl.engine._timing import Speed

    speed = Speed("cnn", 1.0, 0.01, 3.0, 1.0, 0.1, 9.0)
    plan = Plan({"cnn": speed}, 6, 3000.0, 0.0, 3000.0)
    fitting = plan.epochs_for(speed, 25.0, until=1600.0, cap=cut_short, now=0.0)
    assert fitting == 63 and plan.epochs_for(speed, 25.0, until=1600.0, cap=full, now=0.0) == 24


def test_a_lone_epoch_starts_before_the_deadline_only_with_time_to_spare():
    """A trial that would end with the deadline is cut, then still validates and is kept
    after it: with one epoch's room it starts only with half an epoch to spare."""
    from automl.engine._plan import Plan
    from automl.engine._timing import Speed

    speed = Speed("cnn", 1.0, 0.01, 3.0, 1.0, 0.1, 9.0)  # 1 s of start-up
    plan = Plan({"cnn": speed}, 6, 3000.0, 0.0, 3000.0)
    assert plan.epochs_for(speed, 80.0, now=2900.0) == 0  # 99 s left: no 80 s epoch
    assert plan.epochs_for(speed, 60.0, now=2900.0) == 1
    assert plan.epochs_for(speed, 45.0, now=2900.0) == 2
    # An exploration trial's window ends before the deadline: it may fill it.
    assert plan.epochs_for(speed, 80.0, until=1000.0, now=900.0) == 1
    # The search stops when not even the quickest epoch fits with that spare.
    soon = Plan({"cnn": speed}, 6, time.monotonic() + 12.0, 0.0, 12.0)
    assert soon.out_of_time()  # 12 s hold its 1 + 9 s, not 1 + 13.5 s
    assert not Plan({"cnn": speed}, 6, time.monotonic() + 30.0, 0.0, 30.0).out_of_time()


def test_an_exploration_trial_is_planned_with_a_spare_on_each_epoch():
    """At 165 T the recipe's exploration trial was planned for 3 epochs of 30.1 s in a
    96 s cap, ran its first in 35 s and was cut to 2: an exploration trial's epochs fit
    its window at `EXPLORE_SPARE` times the estimate; a long training's do not. The
    least exploration trial holds the reference's ranking epochs with that spare."""
    from automl.engine._phases import RANKING_EPOCHS
    from automl.engine._plan import Plan
    from automl.engine._timing import Speed

    speed = Speed("cnn", 3.0, 0.01, 3.0, 1.0, 0.1, 30.1)  # 3 s of start-up
    plan = Plan({"cnn": speed}, 6, 3000.0, 0.0, 3000.0)
    assert plan.epochs_in(Window(96.0, "cap"), speed, 30.1, now=0.0) == 2
    assert plan.epochs_in(Window(96.0, "exploration"), speed, 30.1, now=0.0) == 2
    assert plan.epochs_in(Window(96.0, "exploit"), speed, 30.1, now=0.0) == 3
    assert plan.epochs_in(None, speed, 30.1, now=3000.0 - 96.0) == 3  # to the deadline
    for epoch_s in (7.3, 30.1, 64.0):
        speed = Speed("cnn", 3.0, 0.01, 3.0, 1.0, 0.1, epoch_s)
        plan = Plan({"cnn": speed}, 6, 1e5, 0.0, 1e5)
        ranking_s = plan.ranking_trial_s()
        assert ranking_s > 3.0 + RANKING_EPOCHS * EXPLORE_SPARE * epoch_s
        quickest_s, full_s = plan.shortest_trial_s(), plan.full_trial_s()
        split = make_split(5.5 * full_s, quickest_s, full_s, 5.5 * full_s, ranking_s=ranking_s)
        assert split.explore_trial_s == pytest.approx(ranking_s)  # the ranking epochs set it
        # The reference gets all of them, a few seconds after its window began.
        cap = Window(split.explore_trial_s, "cap")
        assert plan.epochs_in(cap, speed, epoch_s, now=2.0) == RANKING_EPOCHS
        # A cap at the full training holds all `max_epochs` with the spare, so that its
        # long training keeps the epoch cap (`exploit_epoch_cap`).
        roomy = make_split(1e5, quickest_s, full_s, 1e5)
        full = Window(roomy.explore_trial_s, "cap")
        assert plan.epochs_in(full, speed, epoch_s, now=1e-3) == plan.max_epochs


@pytest.mark.slow  # a real timed search / three plans on CIFAR-10
def test_once_no_trial_fits_no_more_are_started(tmp_path):
    """With a trial count the time cannot hold, the search ends at the deadline with at
    most one trial marked "not started" after its last trained one, not one per
    remaining slot. (A slow point pruned unstarted while a quicker one still fits is by
    design: a loaded machine may see one or two before the end.)"""
    result = automl.search(
        "digits",
        trials=200,
        timeout="35s",  # setup, measuring and the finish's share leave room for a trial,
        # on a machine 2x slower too (8-20 s of setup and measuring)
        storage=sqlite_url(tmp_path / "a.db"),
        tracking_uri=None,
        out=tmp_path / "out",
    )
    reasons = [TrialRecord.read(t).reason for t in result.study.trials]
    trained = [i for i, t in enumerate(result.study.trials) if TrialRecord.read(t).epochs]
    assert trained, reasons
    after_last = reasons[trained[-1] + 1 :]
    assert sum(r.startswith("not started") for r in after_last) <= 1, reasons
    assert sum(r.startswith("not started") for r in reasons) <= 3, reasons
    assert len(result.study.trials) < 200


@pytest.mark.parametrize(
    ("budget_s", "full_s", "explored"),
    [
        (3000.0, 100.0, 0.5),  # 30 full trainings: half explores
        (3000.0, 500.0, 1 / 3),  # 6 full trainings: the long training keeps 4
        (3000.0, 700.0, 1 - 4 * 700 / 3000),  # 4.3: what lies beyond 4 (one short trial)
    ],
)
def test_exploration_shrinks_when_the_budget_holds_few_full_trainings(budget_s, full_s, explored):
    split = make_split(budget_s, quickest_s=60.0, full_s=full_s, deadline=budget_s)
    assert split is not None
    trials_s = split.explore_s + split.exploit_s
    assert split.explore_s / trials_s == pytest.approx(explored)
    assert trials_s == pytest.approx(budget_s)  # the finish's time is not the split's
    assert split.exploit_from == pytest.approx(budget_s - split.exploit_s)


def test_exploration_trials_hold_the_reference_epochs_that_rank_configurations():
    """At 165 T on CIFAR-10 (numbers as planned there, with a wider long training made
    shorter, 1400 s, so that 345 s are explored as then) six 58 s trials gave the recipe
    one epoch: with `ranking_s` each holds its three, so fewer run; a budget whose
    exploration cannot hold one such trial is all exploitation."""
    plain = make_split(
        1745.0, quickest_s=30.0, full_s=200.0, deadline=1745.0, grown_s=1400.0, grown_least_s=1000.0
    )
    ranked = make_split(
        1745.0, 30.0, 200.0, 1745.0, grown_s=1400.0, grown_least_s=1000.0, ranking_s=99.0
    )
    assert plain.explore_trial_s == pytest.approx(plain.explore_s / 6)
    assert plain.explore_trial_s < 99.0
    assert ranked.explore_trial_s == 99.0 and ranked.explore_trials < plain.explore_trials
    assert ranked.explore_s == plain.explore_s and ranked.grows
    short = make_split(1745.0, quickest_s=30.0, full_s=200.0, deadline=1745.0,
                       grown_s=1400.0, grown_least_s=1000.0, ranking_s=400.0)  # fmt: skip
    assert short.explore_s == 0 and not short.explores


def test_a_budget_under_8_quickest_trials_is_not_split():
    assert make_split(479.0, quickest_s=60.0, full_s=360.0, deadline=479.0) is None
    assert make_split(480.0, quickest_s=60.0, full_s=360.0, deadline=480.0) is not None


def test_a_long_training_left_by_an_earlier_search_is_not_run_by_the_next():
    study = optuna.create_study(direction="maximize")
    earlier = make_split(3000.0, quickest_s=10.0, full_s=100.0, deadline=3000.0)
    now = make_split(3000.0, quickest_s=10.0, full_s=100.0, deadline=3000.0)
    assert earlier is not None and now is not None and earlier.run != now.run
    for split in (earlier, now):
        attrs = TrialRecord.attrs(promoted_from=0, exploit=True, exploit_run=split.run)
        study.enqueue_trial({"x": 1.0}, user_attrs=attrs, skip_if_exists=False)
    stale, own = study.ask(), study.ask()
    assert now.window(stale, deadline=3000.0, now=0.0) == Window(0.0, "stale")
    window = now.window(own, deadline=3000.0, now=0.0)
    assert window.limit == "exploit" and window.until == pytest.approx(3000.0)


@pytest.mark.slow  # a real timed search / three plans on CIFAR-10
def test_the_trials_end_early_enough_for_the_finish_to_fit_the_budget(cifar_root, cifar_cache):
    data = load_dataset("cifar10", data_dir=cifar_root, seed=0)
    spec = model_spec(data, data.encode(None), 6)
    space = resolve_space("cnn")
    end = time.monotonic() + 3600
    plan = make_plan(space, data, spec, Objective(), seed=0, deadline=end, timeout=3600)
    # Estimated at the speed of the model that may reach the finish: the grown one.
    speed = plan.grown or next(iter(plan.speeds.values()))
    assert plan.finish_s == pytest.approx(finish_seconds(speed, data))
    # Images: the ensemble's candidates and flip TTA on validation, the test split twice.
    val_pass = speed.val_per_forward * speed.forward_s * -(-len(data.y_val) // speed.batch_size)
    assert plan.finish_s > FINISH_FIXED_S + 5 * val_pass
    assert plan.deadline == pytest.approx(end - plan.finish_s)
    assert plan.as_dict()["finish_s"] == round(plan.finish_s, 1)
    worker = make_plan(
        space, data, spec, Objective(), seed=0, deadline=end, timeout=3600, finishes=False
    )  # a worker exports nothing: its trials run to the end
    assert worker.finish_s == 0 and worker.deadline == end
    tiny = make_plan(
        space, data, spec, Objective(), seed=0, deadline=time.monotonic() + 30, timeout=30,
        refuse=False,
    )  # fmt: skip
    assert tiny.finish_s <= 0.1 * 30  # a tiny budget's trials need the time more


def test_the_finish_is_estimated_at_the_grown_models_speed_where_one_was_measured(
    monkeypatch,
):
    """The long training may grow, and the grown model (twice the forward cost) is then
    the one the finish's TTA views run: the reserve is counted at its speed."""
    from automl.engine import _plan
    from automl.engine._timing import Speed

    data = from_arrays(*digits_as("image"), kind="image")
    spec = model_spec(data, data.encode(None), 6)
    reference = Speed("cnn", 1.0, 0.01, 3.0, 1.0, 0.1, 20.0, 256)
    wider = Speed("cnn", 1.0, 0.02, 3.0, 1.0, 0.1, 40.0, 256)
    for grown in (None, wider):
        measured = _timing.Measured({"cnn": reference}, grown=grown)
        monkeypatch.setattr(_plan, "measure_families", lambda *a, m=measured, **k: m)
        end = time.monotonic() + 3600
        space = resolve_space("cnn")
        plan = make_plan(space, data, spec, Objective(), seed=0, deadline=end, timeout=3600)
        assert plan.finish_s == pytest.approx(finish_seconds(grown or reference, data))
    assert finish_seconds(wider, data) > finish_seconds(reference, data)


def test_trials_the_plan_did_not_start_do_not_count_toward_the_trial_budget():
    study = optuna.create_study(direction="maximize")
    for planned, state in ((3, "COMPLETE"), (0, "PRUNED"), (2, "PRUNED"), (0, "PRUNED")):
        trial = study.ask()
        TrialRecord.write(trial, planned_epochs=planned)
        if state == "COMPLETE":
            study.tell(trial, 0.5)
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert count_finished(study) == 2
    assert not budget_spent(study, 3) and budget_spent(study, 2)


def test_with_nothing_complete_to_exploit_exploration_goes_on_to_the_deadline():
    """Near exploration's end a trial is cut to it only when a configuration is there to
    train long; otherwise trials would be pruned one after another until it passes."""
    split = make_split(1000.0, quickest_s=10.0, full_s=100.0, deadline=1000.0)
    assert split is not None
    near_end = split.exploit_from - 5.0  # less than the cap before exploration's end
    study = optuna.create_study(direction="maximize")
    study.tell(study.ask(), state=optuna.trial.TrialState.PRUNED)
    window = split.window(study.ask(), 1000.0, now=near_end)
    assert window == Window(near_end + split.explore_trial_s, "cap")  # a whole capped trial
    study.add_trial(optuna.create_trial(value=0.5))
    window = split.window(study.ask(), 1000.0, now=near_end)
    assert window == Window(split.exploit_from, "exploration")


def test_every_process_of_a_search_splits_under_its_first_process_token():
    """A worker (`--jobs`, `automl worker`, a recycled process) takes the token of the
    search that enqueued the long trainings, so it runs them instead of pruning them as
    an earlier search's."""
    from automl.engine._plan import Plan
    from automl.engine._setup import _one_run

    def plan(split: bool) -> Plan:
        made = make_split(3000.0, quickest_s=10.0, full_s=100.0, deadline=3000.0)
        return Plan({}, 10, 3000.0, 0.0, 3000.0, split=made if split else None)

    study = optuna.create_study()
    leader = _one_run(plan(True), study, worker=False)
    worker = _one_run(plan(True), study, worker=True)
    assert worker.split is not None and leader.split is not None
    assert worker.split.run == leader.split.run
    _one_run(plan(False), study, worker=False)  # a later search that does not split
    alone = plan(True)
    assert _one_run(alone, study, worker=True).split == alone.split  # no stale token


def test_a_trial_that_cannot_run_whatever_its_model_is_pruned_before_it_samples():
    """A stale long training, or a trial while a long training waits, ends before any
    parameter is sampled: the sampler never learns from a point that did not run."""
    from types import SimpleNamespace

    from automl.engine._objective import TrialObjective
    from automl.engine._plan import Plan
    from automl.engine._timing import Speed

    deadline = time.monotonic() + 3000
    split = make_split(3000.0, quickest_s=10.0, full_s=100.0, deadline=deadline)
    speed = Speed("mlp", 1.0, 0.01, 3.0, 1.0, 0.1, 9.0)
    plan = Plan({"mlp": speed}, 10, deadline, 0.0, 3000.0, split=split)
    objective = TrialObjective(SimpleNamespace(plan=plan, publisher=None))
    study = optuna.create_study(direction="maximize")
    fresh = study.ask()  # then the best configuration is enqueued to train long
    attrs = TrialRecord.attrs(promoted_from=0, exploit=True, exploit_run=split.run)
    study.enqueue_trial({"x": 1.0}, user_attrs=attrs)
    with pytest.raises(optuna.TrialPruned, match="train long first"):
        objective._yield_before_sampling(fresh)
    stale = TrialRecord.attrs(promoted_from=0, exploit=True, exploit_run="an earlier search")
    study.tell(fresh, state=optuna.trial.TrialState.PRUNED)
    study.tell(study.ask(), 1.0)  # the long training ran
    study.enqueue_trial({"x": 2.0}, user_attrs=stale)
    earlier = study.ask()
    with pytest.raises(optuna.TrialPruned, match="a long training of an earlier search"):
        objective._yield_before_sampling(earlier)
    study.tell(earlier, state=optuna.trial.TrialState.PRUNED)
    for trial in (study.trials[0], study.trials[2]):
        assert trial.params == {} and TrialRecord.read(trial).planned_epochs == 0
