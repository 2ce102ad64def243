"""The `rnn` space on real, tiny data: scikit-learn's 8x8 digits in three shapes.

- "sequence": 8 timesteps (pixel rows) of 8 features, standardized in the model.
- "text": the 64 pixel intensities 0..16 as token ids (vocab 17, 0 = padding). A stand-in
  for real text until the text datasets land: it exercises the embedding and the padding
  mask, not language.
- "image": (8, 8, 1) pixels scaled to 0..255, read by the space row by row.
- "short_text": the same with 2x2 blocks averaged, 16 tokens: random points are called and
  trained eagerly (tracing a graph per model costs more), where each step is a Python
  loop iteration.

Every model is real: built from real Optuna trials, compiled, called and trained.
"""

from __future__ import annotations

import keras
import numpy as np
import optuna
import pytest
from optuna.trial import FixedTrial

from automl import UsageError
from automl.spaces import HyperParameters, ModelSpec
from search_spaces import rnn
from tests._digits import digits_as, digits_spec, fit_on_digits

optuna.logging.set_verbosity(optuna.logging.WARNING)

KINDS = ("sequence", "text", "image")


@pytest.mark.parametrize(
    "kind",
    ["sequence", *(pytest.param(k, marks=pytest.mark.slow) for k in ("short_text", "image"))],
)
def test_random_points_build_call_and_train(kind):
    """Random points build compiled models that take raw data, output one probability per
    class, and take a training step; text-only and dense-only names appear only where
    they act."""
    x, y = digits_as(kind)
    spec = digits_spec(kind)
    for seed in range(2):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        for _ in range(2):
            trial = study.ask()
            model = rnn.build(HyperParameters(trial), spec)
            assert model.compiled
            assert tuple(model.inputs[0].shape[1:]) == x.shape[1:]
            probabilities = keras.ops.convert_to_numpy(model(x[:4], training=False))
            assert probabilities.shape == (4, 10)
            np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)
            model.run_eagerly = True  # a real step without tracing a graph per model (slow)
            loss = model.train_on_batch(x[:16], y[:16])
            assert np.isfinite(loss).all(), trial.params
            assert ("embedding_dim" in trial.params) == (spec.kind == "text")
            dense = trial.params["dense_layer"]
            assert ("dense_units" in trial.params) == dense
            assert ("activation" in trial.params) == dense
            study.tell(trial, 0.0)
            keras.utils.clear_session()


def test_regression_head_has_one_unit_in_target_units():
    """A regression spec gets one linear output rescaled by the target mean and std."""
    x, _ = digits_as("sequence")
    spec = digits_spec("sequence", task="regression")
    model = rnn.build(HyperParameters(optuna.create_study().ask()), spec)
    assert model.outputs[0].shape[-1] == 1
    assert model.loss == "mean_squared_error"
    assert model.get_layer("output").offset == pytest.approx(spec.target_stats[0])
    assert keras.ops.convert_to_numpy(model(x[:3])).shape == (3, 1)


@pytest.mark.parametrize("kind", KINDS)
def test_starting_point_is_exactly_one_point_of_the_space(kind):
    """For each kind, the starting point names every param the build samples, no other,
    and is a one-layer bidirectional LSTM."""
    (point,) = rnn.starting_points(digits_spec(kind))
    trial = FixedTrial(point)  # raises if the build asks for a param the point lacks
    model = rnn.build(HyperParameters(trial), digits_spec(kind))
    assert trial.params == point
    (wrapper,) = [layer for layer in model.layers if isinstance(layer, keras.layers.Bidirectional)]
    assert isinstance(wrapper.forward_layer, keras.layers.LSTM)
    assert wrapper.forward_layer.units == 64
    assert all(point[k] == v for k, v in rnn.BIDIRECTIONAL_LSTM.items() if k in point)


def test_starting_point_learns_digit_rows():
    """The starting point reads digits row by row and beats chance (10 %) by far in 3 epochs."""
    x, y = digits_as("sequence")
    spec = digits_spec("sequence", max_epochs=3)
    keras.utils.set_random_seed(0)
    hp = HyperParameters(FixedTrial(rnn.starting_points(spec)[0]))
    model = rnn.build(hp, spec)
    assert fit_on_digits(model, hp, "sequence")[-1] > 0.5


def test_images_are_read_row_by_row():
    """An (H, W, C) image becomes H timesteps of W*C features."""
    spec = ModelSpec((6, 5, 3), "image", "classification", 4, 100, 2)
    hp = HyperParameters(FixedTrial(rnn.starting_points(spec)[0]))
    model = rnn.build(hp, spec)
    assert tuple(model.get_layer("rows_as_steps").output.shape[1:]) == (6, 15)


def test_text_padding_steps_are_skipped():
    """Token 0 is masked: whatever its embedding, the predictions do not change; padding in
    mid-sequence is why text never takes the cuDNN kernels."""
    x, _ = digits_as("short_text")
    spec = digits_spec("short_text")
    assert (x[:8] == 0).any(axis=1).all()  # every row has padding to skip
    for cell in ("lstm", "gru", "simple_rnn"):
        point = {**rnn.starting_points(spec)[0], "cell": cell, "layers": 2}
        model = rnn.build(HyperParameters(FixedTrial(point)), spec)
        # cuDNN would assert on this padding on a GPU: text takes the generic kernel.
        recurrent = [w.forward_layer for w in model.layers if hasattr(w, "forward_layer")]
        assert len(recurrent) == 2
        assert all(getattr(layer, "use_cudnn", False) is False for layer in recurrent)
        before = keras.ops.convert_to_numpy(model(x[:8]))
        embedding = model.get_layer("token_embedding")
        table = keras.ops.convert_to_numpy(embedding.embeddings)
        table[0] = np.random.default_rng(1).normal(size=table.shape[1]) * 5
        embedding.embeddings.assign(table)
        after = keras.ops.convert_to_numpy(model(x[:8]))
        np.testing.assert_allclose(after, before, atol=1e-5, err_msg=cell)
        keras.utils.clear_session()


@pytest.mark.slow  # keeps the default suite under 15 minutes on 2 cores
def test_texts_with_no_token_train_and_predict_finite():
    """Issue #14: a text with no token (every step padding) leaves the recurrent layers
    at their initial state, not NaN: at a high learning rate every cell, one way and both
    ways, trains with a finite loss and predicts finite probabilities for such texts."""
    x, y = digits_as("short_text")
    x, y = x[:64].copy(), y[:64]
    x[::4] = 0  # every batch holds all-padding rows
    spec = digits_spec("short_text")
    for cell, bidirectional in (("lstm", True), ("gru", False), ("simple_rnn", True)):
        point = {**rnn.starting_points(spec)[0], "cell": cell, "layers": 2}
        point.update(bidirectional=bidirectional, learning_rate=5e-3)
        model = rnn.build(HyperParameters(FixedTrial(point)), spec)
        history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        assert np.isfinite(history.history["loss"]).all(), (cell, history.history["loss"])
        assert np.isfinite(model.predict(x[:8], verbose=0)).all(), cell
        keras.utils.clear_session()


def test_vector_data_is_refused_with_a_usage_error():
    """The rnn space does not build for vectors, and says which space does."""
    spec = ModelSpec((4,), "vector", "classification", 3, 10, 1)
    with pytest.raises(UsageError, match="rnn space builds for sequence/text/image data"):
        rnn.build(HyperParameters(optuna.create_study().ask()), spec)
    assert rnn.starting_points(spec) == []
