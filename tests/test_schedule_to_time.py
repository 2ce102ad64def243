"""A trial whose epochs run slower than planned skips ahead in its schedule and ends its
decay with the last epoch that fits, instead of being cut by the deadline mid-schedule."""

from __future__ import annotations

import time

import keras
import numpy as np
import optuna
import pytest

from automl.engine._callbacks import ScheduleToTime
from automl.record import TrialRecord

EPOCH_S = 0.4  # each epoch is made to take this long (a slow machine)
STEPS = 4  # training steps per epoch


class _Slow(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        time.sleep(EPOCH_S)


def _fit(until: float | None, planned: int) -> tuple[keras.Model, ScheduleToTime, int]:
    """A small model with a cosine schedule over `planned` epochs, fitted for them."""
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(STEPS * 8, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    schedule = keras.optimizers.schedules.CosineDecay(0.1, STEPS * planned, alpha=0.01)
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="sparse_categorical_crossentropy")
    trial = optuna.create_study().ask()
    refit = ScheduleToTime(trial, until, planned)
    history = model.fit(x, y, batch_size=8, epochs=planned, callbacks=[_Slow(), refit], verbose=0)
    TrialRecord.write(trial, epochs=len(history.history["loss"]))
    return model, refit, len(history.history["loss"])


def test_slow_epochs_skip_ahead_in_the_schedule_and_end_its_decay_in_time():
    planned = 10
    until = time.monotonic() + 5.5 * EPOCH_S  # room for about 5 of the 10 planned epochs
    model, refit, ran = _fit(until, planned)
    assert 3 <= ran <= 6 and refit.skipped == planned - ran
    assert time.monotonic() <= until + EPOCH_S  # ended by its time, not by a cut
    # Every planned step of the schedule was taken or skipped: its decay is complete.
    assert int(model.optimizer.iterations.numpy()) == planned * STEPS
    final_rate = float(model.optimizer.learning_rate.numpy())
    assert final_rate == pytest.approx(0.1 * 0.01, rel=1e-3)
    assert TrialRecord.read(refit.trial).skipped_epochs == refit.skipped


def test_epochs_on_pace_or_without_a_time_limit_keep_the_planned_schedule():
    for until in (None, time.monotonic() + 100.0):
        model, refit, ran = _fit(until, planned=4)
        assert ran == 4 and refit.skipped == 0
        assert int(model.optimizer.iterations.numpy()) == 4 * STEPS
        assert TrialRecord.read(refit.trial).skipped_epochs is None
