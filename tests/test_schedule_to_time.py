"""A trial whose epochs run slower than planned squeezes the rest of its schedule into the
epochs that fit and ends its decay with the last of them, instead of being cut by the
deadline mid-schedule."""

from __future__ import annotations

import time

import keras
import numpy as np
import optuna
import pytest

from automl.engine._callbacks import ScheduleToTime, _WarpedSchedule
from automl.engine._objective import stretch_limit
from automl.engine._phases import UNCAPPED_EPOCHS
from automl.engine._trainer import FitPlan, fit_trial
from automl.objective import Objective
from automl.record import TrialRecord

EPOCH_S = 1.0  # each epoch is made to take this long (a slow machine; the first also traces)
STEPS = 4  # training steps per epoch


class _Slow(keras.callbacks.Callback):
    """Makes each epoch slow (`EPOCH_S`, or `durations[epoch]`), and notes the learning
    rate at each epoch's end."""

    def __init__(self, durations: list[float] | None = None) -> None:
        super().__init__()
        self.rates: list[float] = []
        self.durations = durations
        self.refit: ScheduleToTime | None = None
        self.stops: list[int] = []  # the epoch `refit` planned to stop after, each epoch

    def on_epoch_end(self, epoch, logs=None):
        self.rates.append(float(self.model.optimizer.learning_rate.numpy()))
        if self.refit is not None:
            self.stops.append(self.refit.stop_after)
        time.sleep(EPOCH_S if self.durations is None else self.durations[epoch])


def _fit(
    until: float | None,
    planned: int,
    *extra: keras.callbacks.Callback,
    durations: list[float] | None = None,
    most: int | None = None,
    overhead_s: float | None = None,
) -> tuple[keras.Model, ScheduleToTime, _Slow]:
    """A small model with a cosine schedule over `planned` epochs, fitted for them (or
    up to `most`); and what noted the rate at each epoch's end. With `overhead_s` (a
    family's fit overhead), its first epoch's pace is checked too."""
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(STEPS * 8, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    schedule = keras.optimizers.schedules.CosineDecay(0.1, STEPS * planned, alpha=0.01)
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="sparse_categorical_crossentropy")
    trial = optuna.create_study().ask()
    refit = ScheduleToTime(trial, until, planned, most_epochs=most, fit_overhead_s=overhead_s)
    slow = _Slow(durations)
    slow.refit = refit
    callbacks = [slow, refit, *extra]
    epochs = most or planned
    history = model.fit(x, y, batch_size=8, epochs=epochs, callbacks=callbacks, verbose=0)
    TrialRecord.write(trial, epochs=len(history.history["loss"]))
    return model, refit, slow


def test_slow_epochs_squeeze_the_schedule_and_end_its_decay_in_time():
    planned = 10
    until = time.monotonic() + 5.5 * EPOCH_S  # room for about 5 of the 10 planned epochs
    model, refit, slow = _fit(until, planned)
    rates = slow.rates
    ran = len(rates)
    assert 3 <= ran <= 6 and refit.skipped == planned - ran
    assert time.monotonic() <= until + EPOCH_S  # ended by its time, not by a cut
    assert int(model.optimizer.iterations.numpy()) == ran * STEPS  # no step was faked
    # The decay is complete with the last epoch that ran...
    assert rates[-1] == pytest.approx(0.1 * 0.01, rel=1e-3)
    # ...and reached by a falling rate: what was left of it was squeezed, not skipped.
    assert (np.diff(rates) <= 0).all(), rates
    # The trained model keeps its plain schedule, so it saves and loads as it was built.
    assert type(model.optimizer._learning_rate) is keras.optimizers.schedules.CosineDecay
    assert TrialRecord.read(refit.trial).skipped_epochs == refit.skipped


class _Gap(keras.callbacks.Callback):
    """Time spent between epochs, after the schedule's callback has seen the epoch end
    (a later callback saving, a new iterator that tf.data held)."""

    def on_epoch_end(self, epoch, logs=None):
        time.sleep(EPOCH_S)


def test_time_between_epochs_counts_in_the_pace():
    """Epochs of 0.05 s with 1 s between them: timed from the epoch's begin, they would
    seem to fit 10 times over and the deadline would cut the decay; timed end to end,
    the schedule is squeezed and its decay ends with the last epoch that ran."""
    until = time.monotonic() + 5.5 * EPOCH_S
    _, refit, slow = _fit(until, 10, _Gap(), durations=[0.05] * 10)
    assert 3 <= len(slow.rates) <= 6 and refit.skipped == 10 - len(slow.rates)
    assert slow.rates[-1] == pytest.approx(0.1 * 0.01, rel=1e-3)


def test_epochs_on_pace_or_without_a_time_limit_keep_the_planned_schedule():
    for until in (None, time.monotonic() + 100.0):
        model, refit, slow = _fit(until, planned=4)
        rates = slow.rates
        assert len(rates) == 4 and refit.skipped == 0
        assert int(model.optimizer.iterations.numpy()) == 4 * STEPS
        assert rates[-1] == pytest.approx(0.1 * 0.01, rel=1e-3)
        assert TrialRecord.read(refit.trial).skipped_epochs is None


def test_a_schedule_squeezed_by_slow_epochs_stretches_back_when_epochs_run_fast():
    """The second epoch takes 2 s, so few of the 10 planned fit 8 s and the schedule is
    squeezed; the next ones take 0.05 s, so every epoch fits again: the schedule is
    stretched back and all 10 run, its decay ending with the last."""
    durations = [0.05, 2.0] + [0.05] * 8
    model, refit, slow = _fit(time.monotonic() + 8.0, 10, durations=durations)
    rates = slow.rates
    assert min(slow.stops) < 10 and len(rates) == 10, slow.stops  # squeezed, then back
    assert refit.skipped == 0 and TrialRecord.read(refit.trial).skipped_epochs == 0
    assert rates[-1] == pytest.approx(0.1 * 0.01, rel=1e-3)
    assert (np.diff(rates) <= 1e-9).all(), rates


def test_epochs_faster_than_planned_stretch_the_schedule_up_to_the_most_allowed():
    """Planned for 4 epochs of a pessimistic estimate, they take 0.05 s with 8 s left:
    the schedule is stretched over the 8 allowed, its decay ending with the last."""
    durations = [0.05] * 8
    model, refit, slow = _fit(time.monotonic() + 8.0, 4, durations=durations, most=8)
    rates = slow.rates
    assert len(rates) == 8 and int(model.optimizer.iterations.numpy()) == 8 * STEPS
    assert rates[-1] == pytest.approx(0.1 * 0.01, rel=1e-3)
    assert (np.diff(rates) <= 1e-9).all(), rates
    facts = TrialRecord.read(refit.trial)
    assert facts.stretched_epochs == 4 and facts.skipped_epochs == 0


def test_only_a_trial_its_time_limited_may_stretch_and_at_most_twice_its_plan():
    assert stretch_limit(5, cap=6) == 6 and stretch_limit(5, cap=UNCAPPED_EPOCHS) == 10
    assert stretch_limit(6, cap=6) == 6  # the cap limited it, not its time


def test_a_long_training_may_stretch_to_four_times_its_plan():
    """A long training's unused window goes to trials that do not train long."""
    assert stretch_limit(10, cap=UNCAPPED_EPOCHS, long=True) == 40
    assert stretch_limit(10, cap=24, long=True) == 24
    assert stretch_limit(24, cap=24, long=True) == 24


@pytest.mark.parametrize("until_s", [None, 60.0])
def test_a_trial_planned_to_time_fits_up_to_its_stretch(until_s):
    """`fit_trial` lets a trial planned to a window run past its plan (here on epochs
    much faster than the window needs); without a window it runs its plan."""
    until = None if until_s is None else time.monotonic() + until_s
    plan = FitPlan(
        batch_size=8, max_epochs=3, patience=3, objective=Objective(), until=until,
        stretch_to=6, protected=True,
    )  # fmt: skip
    outcome, _ = _fit_trial(plan)
    assert outcome.epochs == (3 if until is None else 6)


def _fit_trial(plan: FitPlan):
    """`fit_trial` of a small model on 64 rows (8 steps of 8), its cosine schedule over
    `plan.max_epochs`; the outcome and the trial."""
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    schedule = keras.optimizers.schedules.CosineDecay(0.1, 8 * plan.max_epochs, alpha=0.01)
    model.compile(
        keras.optimizers.SGD(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    trial = optuna.create_study(direction="maximize").ask()
    return fit_trial(trial, model, (x, y), (x, y), plan, report=lambda *_: None), trial


def test_a_squeezed_schedule_goes_on_from_where_it_was_and_ends_on_time():
    """Steps 0-39 ran on plan; the 60 planned steps left must fit in 20: the rate at step
    40 is unchanged, and step 60 reads the schedule's end."""
    plain = keras.optimizers.schedules.CosineDecay(0.1, 100, alpha=0.01)
    warped = _WarpedSchedule(plain)
    before = float(warped(40))
    warped.squeeze(40, end=100, steps_left=20)
    assert float(warped(40)) == pytest.approx(before, rel=1e-6)
    assert float(warped(50)) == pytest.approx(float(plain(70)), rel=1e-5)  # 3 times faster
    assert float(warped(60)) == pytest.approx(float(plain(100)), rel=1e-5)
    warped.squeeze(50, end=100, steps_left=5)  # slower again: squeezed from where it is
    assert float(warped(50)) == pytest.approx(float(plain(70)), rel=1e-5)
    assert float(warped(55)) == pytest.approx(float(plain(100)), rel=1e-5)


def test_a_checkpoint_saved_mid_fit_holds_the_plain_schedule_and_loads_with_keras(tmp_path):
    """A user's `ModelCheckpoint` saves while the warp is in place: the file must name
    the schedule the model was built with, so plain Keras loads it."""
    path = tmp_path / "mid.keras"
    until = time.monotonic() + 5.5 * EPOCH_S  # squeezed: the warp is in use when it saves
    _, refit, _ = _fit(until, 10, keras.callbacks.ModelCheckpoint(path))
    assert refit.skipped > 0
    loaded = keras.models.load_model(path)
    schedule = loaded.optimizer._learning_rate
    assert type(schedule) is keras.optimizers.schedules.CosineDecay
    assert schedule.get_config()["decay_steps"] == STEPS * 10


def test_a_short_trial_whose_first_epoch_ran_slow_stops_in_time():
    """Planned for 2 epochs within 1.5 s, the first takes over 1 s: at that pace the
    second would end well past the trial's time, and a 2-epoch trial has no second
    epoch to correct it from, so it stops after the first (as an exploration trial
    planned for 2 epochs of 40 s within 97 s should have, which ran 84 + 69 s)."""
    until = time.monotonic() + 1.5
    _, refit, slow = _fit(until, 2, durations=[1.0, 1.0], overhead_s=0.1)
    assert len(slow.rates) == 1 and refit.skipped == 1
    assert TrialRecord.read(refit.trial).skipped_epochs == 1


def test_a_first_epoch_squeezes_a_longer_schedule_which_still_ends_its_decay():
    """Planned for 6 epochs within 3.5 s, the first takes over 1 s: the schedule is
    squeezed from then on, and its decay ends with the last epoch that ran."""
    until = time.monotonic() + 3.5
    _, refit, slow = _fit(until, 6, durations=[1.0] * 6, overhead_s=0.1)
    assert slow.stops[1] < 6, slow.stops  # squeezed after the first epoch
    assert 2 <= len(slow.rates) <= 4 and refit.skipped == 6 - len(slow.rates)
    assert slow.rates[-1] == pytest.approx(0.1 * 0.01, rel=1e-3)
    assert (np.diff(slow.rates) <= 0).all(), slow.rates


def test_a_first_epoch_neither_stretches_nor_squeezes_on_an_untrusted_overhead():
    """The first epoch's pace only squeezes: fast, it leaves the plan to the second
    epoch's check. Where the overhead is most of the epoch (a small model: tracing is
    the epoch), its pace is not read at all: that slow first epoch squeezes nothing."""
    until = time.monotonic() + 8.0
    _, _, fast = _fit(until, 2, durations=[0.05] * 4, most=4, overhead_s=0.0)
    assert fast.stops[1] == 2, fast.stops  # not stretched after the first epoch alone
    until = time.monotonic() + 1.5
    _, refit, slow = _fit(until, 2, durations=[1.0, 0.05], overhead_s=0.9)
    assert len(slow.rates) == 2 and refit.skipped == 0


class _SlowSteps(keras.callbacks.Callback):
    """Makes each training step take `step_s`: the time falls inside the epoch, whatever
    the order of the callbacks."""

    def __init__(self, step_s: float) -> None:
        super().__init__()
        self.step_s = step_s

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(self.step_s)


def test_fit_trial_checks_the_first_epoch_with_its_family_overhead():
    """`FitPlan.fit_overhead_s` reaches the trial's `ScheduleToTime`: epochs of 8
    steps of 0.125 s, 2 planned within 1.5 s, stop after the first."""
    plan = FitPlan(
        batch_size=8, max_epochs=2, patience=2, objective=Objective(),
        until=time.monotonic() + 1.5, fit_overhead_s=0.1, protected=True,
        callbacks=(_SlowSteps(0.125),),
    )  # fmt: skip
    outcome, trial = _fit_trial(plan)
    assert outcome.epochs == 1 and TrialRecord.read(trial).skipped_epochs == 1
