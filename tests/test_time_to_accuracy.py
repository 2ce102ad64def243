"""`benchmarks.time_to_accuracy`: its run specs, and a recipe trained at widths outside
the cnn space's choices (airbench's 64/256/256) on small real-shaped images, the space
left as it was afterwards."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from automl.data import from_arrays
from automl.engine._setup import model_spec
from benchmarks.time_to_accuracy import run_spec, train, widths_allowed
from search_spaces import cnn


def test_run_specs_read_widths_and_epochs():
    assert run_spec("64-256-256:10") == ([64, 256, 256], 10)


@pytest.mark.parametrize("text", ["64-256:10", "64-256-256", "a-b-c:3", "32-64-128:0"])
def test_a_malformed_run_spec_says_what_it_should_look_like(text):
    with pytest.raises(argparse.ArgumentTypeError, match="WIDTHS:EPOCHS"):
        run_spec(text)


def test_widths_outside_the_space_train_and_the_space_is_restored():
    before = {stage: list(choices) for stage, choices in cnn.FILTERS.items()}
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(300, 16, 16, 3)).astype("uint8")
    data = from_arrays(x, rng.integers(0, 3, 300), kind="image", name="noise")
    spec = model_spec(data, data.encode(None), 1)
    result = train([8, 256, 16], 1, data, spec)
    assert result["widths"] == [8, 256, 16] and len(result["val"]) == 1
    assert 0.0 <= result["test_flip"] <= 1.0 and result["train_s"] > 0
    assert dict(cnn.FILTERS) == before
    with pytest.raises(ZeroDivisionError), widths_allowed([8, 256, 16]):
        assert 256 in cnn.FILTERS[2]
        raise ZeroDivisionError
    assert dict(cnn.FILTERS) == before


def test_the_device_is_the_gpu_keras_lists_else_the_cpu(monkeypatch):
    import keras

    from benchmarks.time_to_accuracy import device

    monkeypatch.setattr(keras.distribution, "list_devices", lambda *a: ["cpu:0"])
    assert device().startswith("cpu (")
    monkeypatch.setattr(keras.distribution, "list_devices", lambda *a: ["cpu:0", "gpu:0"])
    assert device() == "gpu:0"
