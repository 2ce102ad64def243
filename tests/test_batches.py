"""In-memory arrays as batches for `fit` without tf.data's autotuning (`automl.data._batches`).

Why the pipeline exists (epochs stalled by tf.data's autotuning thread) is measured by
`benchmarks/epoch_gaps.py`, not here: these tests check that it feeds the same data.
"""

from __future__ import annotations

import keras
import numpy as np
from sklearn.datasets import load_digits

from automl.data._batches import (
    evaluate_inputs,
    fit_data,
    fit_inputs,
    in_memory_batches,
    predict_inputs,
)


def _epoch(dataset) -> tuple[list, list[np.ndarray]]:
    """One pass: the batches' inputs (arrays, or dicts of arrays) and targets."""
    xs, ys = [], []
    for x, y in dataset:
        xs.append(
            {k: np.asarray(v) for k, v in x.items()} if isinstance(x, dict) else np.asarray(x)
        )
        ys.append(np.asarray(y))
    return xs, ys


def test_every_row_comes_once_an_epoch_in_a_new_order_with_the_last_batch_partial() -> None:
    x = np.arange(10 * 3, dtype="float32").reshape(10, 3)
    y = np.arange(10)
    dataset = in_memory_batches(x, y, 4, shuffle=True)

    first_x, first_y = _epoch(dataset)
    orders = [np.concatenate(first_y)] + [np.concatenate(_epoch(dataset)[1]) for _ in range(5)]

    assert [len(b) for b in first_y] == [4, 4, 2]
    assert all(sorted(order) == list(range(10)) for order in orders)
    assert len({tuple(order) for order in orders}) > 1  # reshuffled between epochs
    np.testing.assert_array_equal(np.concatenate(first_x), x[np.concatenate(first_y)])
    assert dataset.options().autotune.enabled is False


def test_without_shuffle_rows_keep_their_order_dict_inputs_their_names_floats_float32() -> None:
    x = {"age": np.arange(5, dtype="float64"), "city": np.arange(5) % 2}
    y = np.arange(5) * 10.0

    xs, ys = _epoch(in_memory_batches(x, y, 2, shuffle=False))

    np.testing.assert_array_equal(np.concatenate(ys), y)
    np.testing.assert_array_equal(np.concatenate([b["city"] for b in xs]), x["city"])
    assert xs[0]["age"].dtype == ys[0].dtype == np.float32  # as Keras casts them
    assert xs[0]["city"].dtype == np.int64


def test_text_stays_with_keras_as_arrays() -> None:
    texts = np.array(["a cat", "a dog"], dtype=object)

    assert in_memory_batches(texts, np.array([0, 1]), 2, shuffle=True) is None
    inputs = fit_inputs(texts, np.array([0, 1]), 2, shuffle=True)
    assert inputs["x"] is texts and inputs["batch_size"] == 2 and inputs["shuffle"] is True


def _digits_accuracy(fed_as_batches: bool) -> float:
    """Test accuracy of a softmax regression trained 30 epochs on digits, seed 0."""
    x, y = load_digits(return_X_y=True)
    x = (x / 16).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if fed_as_batches:
        model.fit(**fit_inputs(x[:1400], y[:1400], 64, shuffle=True), epochs=30, verbose=0)
        return model.evaluate(**evaluate_inputs(x[1400:], y[1400:], 64), verbose=0)[1]
    model.fit(x[:1400], y[:1400], batch_size=64, epochs=30, verbose=0)
    return model.evaluate(x[1400:], y[1400:], batch_size=64, verbose=0)[1]


def test_a_model_learns_digits_from_the_batches_as_from_the_arrays() -> None:
    from_batches, from_arrays = _digits_accuracy(True), _digits_accuracy(False)

    assert from_batches > 0.8
    assert abs(from_batches - from_arrays) < 0.03


def test_a_fit_feeds_training_and_validation_the_same_way() -> None:
    images, labels = np.zeros((6, 2, 2, 3), dtype="uint8"), np.arange(6)
    texts = np.array(["a", "b"], dtype=object)

    batched = fit_data((images, labels), (images[:2], labels[:2]), 4)
    as_arrays = fit_data((images, labels), (texts, labels[:2]), 4)

    assert [len(y) for _, y in batched["x"]] == [4, 2]
    assert [len(y) for _, y in batched["validation_data"]] == [2]
    assert batched["shuffle"] is False and "y" not in batched
    assert as_arrays["x"] is images and as_arrays["batch_size"] == 4
    assert as_arrays["validation_data"][0] is texts


def test_predict_feeds_inputs_alone_in_order_and_two_inputs_stay_two_inputs() -> None:
    """`predict_inputs`: the rows in order, batched without autotuning, give the same
    predictions as Keras' own feed, also for a model of two inputs given as a list
    (which Keras would read as (x, y) if the batches were bare tuples)."""
    keras.utils.set_random_seed(0)
    left, right = keras.Input((3,)), keras.Input((2,))
    joined = keras.layers.Concatenate()([left, right])
    model = keras.Model([left, right], keras.layers.Dense(4, activation="softmax")(joined))
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(10, 3)).astype("float32"), rng.normal(size=(10, 2))]

    inputs = predict_inputs(x, 4)

    assert inputs["x"].options().autotune.enabled is False
    expected = model.predict(x, batch_size=4, verbose=0)
    np.testing.assert_allclose(model.predict(**inputs, verbose=0), expected, rtol=1e-6)
    texts = np.array(["a cat", "a dog"], dtype=object)
    assert predict_inputs(texts, 2) == {"x": texts, "batch_size": 2}


def test_after_a_predict_of_a_tables_columns_one_row_still_predicts_on_its_own() -> None:
    """A table's columns come as 1-D arrays; the model card later times `predict_on_batch`
    on a one-row example of (1, 1) columns. If the feed's batches had the structure of
    `predict_on_batch`'s, TensorFlow would merge the two traces into one of unknown
    rank, which the model's inputs reject (the card then said "latency: not measured")."""
    columns = {name: keras.Input((1,), name=name) for name in ("age", "height")}
    joined = keras.layers.Concatenate()(list(columns.values()))
    model = keras.Model(columns, keras.layers.Dense(2, activation="softmax")(joined))
    rng = np.random.default_rng(0)
    table = {name: rng.normal(size=40).astype("float32") for name in columns}

    model.predict(**predict_inputs(table, 16), verbose=0)
    one_row = {name: values[:1, None] for name, values in table.items()}

    np.testing.assert_allclose(
        model.predict_on_batch(one_row), model(one_row, training=False), rtol=1e-6
    )
