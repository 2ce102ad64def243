"""The benchmarks' T and epoch estimates are timed on the trial's feed (tf.data without
autotuning, `automl.data._batches`), not on Keras' own feed of arrays, which could idle
for up to a minute at an epoch's start."""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from automl.data import from_arrays
from automl.engine._setup import model_spec
from benchmarks import recipes
from search_spaces import cnn


def _small_images():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(600, 32, 32, 3)).astype("uint8")
    data = from_arrays(x, rng.integers(0, 10, 600), kind="image", name="noise")
    return data, model_spec(data, data.encode(None), 1)


def test_t_and_epoch_estimates_train_on_the_trials_feed(monkeypatch):
    fed: list[type] = []
    fit = keras.Model.fit

    def spy(self, x=None, *args, **kwargs):
        fed.append(type(x))
        return fit(self, x, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", spy)
    data, spec = _small_images()
    t = recipes.measure_t(data, spec, quick=True)
    epoch = recipes.epoch_seconds(cnn.FAST_RECIPE, data, spec, steps=2)
    assert math.isfinite(t) and t > 0 and math.isfinite(epoch) and epoch > 0
    assert fed and all(issubclass(kind, tf.data.Dataset) for kind in fed), fed
