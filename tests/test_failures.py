"""Failures teach the sampler: a point whose training diverges (NaN) is avoided.

Optuna's samplers skip FAIL trials, so a region that keeps going NaN would be sampled as
often as any other. automl stores such trials as PRUNED without a value (which TPE ranks
below every other trial) while reporting them as failed.
"""

from __future__ import annotations

import textwrap

import pytest

import automl
from tests.conftest import sqlite_url

SPACE = textwrap.dedent("""
    import keras

    from automl.spaces.training import compile_for_task


    def build(hp, spec):
        head = hp.Choice("head", ["plain", "diverges"])
        units = hp.Int("units", 4, 32)
        inputs = keras.Input(spec.input_shape)
        x = keras.layers.Dense(units, activation="relu")(inputs)
        if head == "diverges":  # logits of 1e30: softmax and the loss are NaN at once
            x = keras.layers.Rescaling(1e30)(keras.layers.Dense(spec.num_classes)(x))
        outputs = keras.layers.Dense(spec.num_classes, activation="softmax")(x)
        return compile_for_task(keras.Model(inputs, outputs), "adam", spec)
""")

TRIALS = 24
STARTUP = 5  # automl's TPE starts from 5 random trials (engine/_study.make_sampler)


@pytest.mark.slow  # keeps the default suite under 15 minutes on 2 cores
def test_tpe_learns_to_avoid_a_region_that_goes_nan(tmp_path):
    space = tmp_path / "space.py"
    space.write_text(SPACE)
    result = automl.search(
        f"{space}:build",
        dataset="iris",
        trials=TRIALS,
        max_epochs=1,
        pruner="none",
        seed=3,
        storage=sqlite_url(tmp_path / "automl.db"),
        tracking_uri="none",
        out=tmp_path / "out",
    )
    trials = result.study.trials
    diverged = [t for t in trials if t.params["head"] == "diverges"]
    assert diverged, "the random start should have tried the diverging head"
    for trial in diverged:  # PRUNED for the sampler, failed for people
        assert trial.state.name == "PRUNED" and trial.user_attrs["failed_in_training"]
        assert "NaN" in trial.user_attrs["reason"]
    assert result.summary["trials"]["failed"] == len(diverged)
    guided = trials[STARTUP:]
    share = sum(t.params["head"] == "diverges" for t in guided) / len(guided)
    # Skipped failures leave TPE at about half; ranked last, it mostly stops.
    assert share < 0.25, f"{share:.0%} of the guided trials still chose the NaN head"
