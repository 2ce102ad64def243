"""The ingredient probe's pieces (`benchmarks.probe_ingredients`) do what they say, on
small models: its figures in RESULTS.md rest on them."""

from __future__ import annotations

import argparse

import keras
import numpy as np
import pytest

from benchmarks.probe_ingredients import (
    NOT_DECAYED,
    alternating_flip,
    lookahead,
    parse_args,
    recipe_change,
    tta_accuracies,
    whiten_bias,
    with_airbench_batch_norm,
    with_bias_lr,
    with_dirac_init,
    with_max_head,
)


def _small_cnn() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="widen")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


def test_dirac_init_passes_the_input_through_its_first_outputs():
    model = _small_cnn()
    with_dirac_init(model)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    widen = keras.Model(model.inputs, model.get_layer("widen").output)
    np.testing.assert_allclose(widen.predict(x, verbose=0)[..., :3], x, atol=1e-6)


def test_airbench_batch_norm_freezes_the_scale_and_tracks_batches_faster():
    model = _small_cnn()
    with_airbench_batch_norm(model)
    norm = next(layer for layer in model.layers if "batch_norm" in layer.name)
    trainable = {id(v) for v in model.trainable_weights}
    assert norm.momentum == 0.4 and id(norm.gamma) not in trainable and id(norm.beta) in trainable


def test_airbench_batch_norm_accepts_a_norm_without_a_scale():
    """The recipe's own batch norm has no scale (`batch_norm_scale`): only the momentum
    changes."""
    inputs = keras.Input((8, 8, 3))
    norm = keras.layers.BatchNormalization(scale=False)
    model = keras.Model(inputs, norm(inputs))
    with_airbench_batch_norm(model)
    assert norm.momentum == 0.4 and norm.gamma is None


def test_lookahead_keeps_the_slow_weights_at_the_end():
    """Over 10 steps the slow weights lag the fast ones: training with it ends elsewhere
    than without, from the same start."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(80, 8, 8, 3)).astype("float32"), rng.integers(0, 2, 80)
    ends = []
    for callbacks in ([], [lookahead(10)]):
        model = _small_cnn()
        model.fit(x, y, batch_size=8, epochs=1, callbacks=callbacks, verbose=0)
        ends.append(model.get_layer("widen").kernel.numpy())
    assert not np.allclose(ends[0], ends[1])


def test_tta_scores_each_view_set_on_the_test_labels():
    """A model that reads only the mirror-symmetric mean of each image scores the same
    with and without flip TTA."""
    inputs = keras.Input((8, 8, 3))
    mean = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(mean))
    x = np.random.default_rng(1).normal(size=(50, 8, 8, 3)).astype("float32")
    y = np.zeros(50, dtype=int)
    figures = tta_accuracies(model, x, y)
    assert figures["test"] == figures["test_flip"]
    assert 0.0 <= figures["test_flip_translate"] <= 1.0


def test_a_recipe_change_reads_numbers_and_text_and_names_the_recipe_keys_on_a_typo():
    assert recipe_change("weight_decay=5e-4") == ("weight_decay", 5e-4)
    assert recipe_change("filters_1=64") == ("filters_1", 64)
    assert recipe_change("head=gap") == ("head", "gap")
    with pytest.raises(argparse.ArgumentTypeError, match="KEY one of .*weight_decay"):
        recipe_change("weight_decays=5e-4")


def test_the_command_line_takes_no_ingredient_or_several_and_refuses_an_unknown_one(capsys):
    args = parse_args(["8", "wd", "--set", "weight_decay=5e-4"])
    assert args.ingredients == [] and args.changes == [("weight_decay", 5e-4)]
    assert parse_args(["8", "x", "bn", "kernel_decay"]).ingredients == ["bn", "kernel_decay"]
    with pytest.raises(SystemExit):
        parse_args(["8", "x", "bnn"])
    assert "expected one of bn, dirac" in capsys.readouterr().err


def test_kernel_decay_decays_the_kernels_only():
    """One SGD step with no gradient to speak of (learning rate 1, decay 0.5): the kernels
    shrink by half, batch norm's scale and the biases stay."""
    model = _small_cnn()
    model.compile(keras.optimizers.SGD(1.0, weight_decay=0.5), "sparse_categorical_crossentropy")
    model.optimizer.exclude_from_weight_decay(var_names=[NOT_DECAYED])
    before = {v.path: v.numpy() for v in model.trainable_weights}
    zeros = [keras.ops.zeros_like(v) for v in model.trainable_weights]
    model.optimizer.apply_gradients(zip(zeros, model.trainable_weights, strict=True))
    for variable in model.trainable_weights:
        ratio = 0.5 if variable.name == "kernel" else 1.0
        np.testing.assert_allclose(variable.numpy(), before[variable.path] * ratio, rtol=1e-6)


def test_max_head_scores_the_maximum_features_at_a_ninth_and_trains():
    model = with_max_head(_small_cnn())
    assert not any(isinstance(x, keras.layers.GlobalAveragePooling2D) for x in model.layers)
    x = np.random.default_rng(2).normal(size=(4, 8, 8, 3)).astype("float32")
    pool = next(x for x in model.layers if isinstance(x, keras.layers.GlobalMaxPooling2D))
    features = keras.Model(model.inputs, pool.input).predict(x, verbose=0)
    kernel = model.layers[-3].kernel.numpy()
    logits = features.max(axis=(1, 2)) @ kernel / 9
    expected = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5)
    assert model.loss == "sparse_categorical_crossentropy"
    model.fit(x, np.array([0, 1, 0, 1]), verbose=0)  # compiled as the original was


def test_bias_lr_moves_batch_norm_offsets_64_times_as_far_and_nothing_else():
    """One SGD step with the same gradient on every weight (no momentum, no decay): the
    offsets move 64 times as far as without it, the other weights as far."""
    steps, names = [], []
    for scaled in (False, True):
        model = _small_cnn()
        model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
        if scaled:
            with_bias_lr(model)
        weights = model.trainable_weights
        before = [v.numpy() for v in weights]
        ones = [keras.ops.ones_like(v) for v in weights]
        model.optimizer.apply_gradients(zip(ones, weights, strict=True))
        steps.append([b - v.numpy() for b, v in zip(before, weights, strict=True)])
        names = [v.name for v in weights]
    assert "beta" in names
    for name, plain, moved in zip(names, *steps, strict=True):
        np.testing.assert_allclose(moved, plain * (64.0 if name == "beta" else 1.0), rtol=1e-5)


def test_whiten_bias_trains_the_bias_for_its_epochs_then_freezes_it_and_never_the_kernel():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    whiten = keras.layers.Conv2D(24, 2, name="whiten")
    x = keras.layers.GlobalAveragePooling2D()(whiten(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    whiten.trainable = False  # as `patch_whitening` leaves it
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 8, 8, 3)).astype("float32"), rng.integers(0, 2, 32)
    kernel = whiten.kernel.numpy()
    biases = []

    class Note(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            biases.append(whiten.bias.numpy().copy())

    model.fit(x, y, batch_size=8, epochs=4, callbacks=[Note(), whiten_bias(model, 2)], verbose=0)
    np.testing.assert_array_equal(whiten.kernel.numpy(), kernel)
    assert not np.allclose(biases[0], biases[1])  # trained in epoch 2
    np.testing.assert_array_equal(biases[1], biases[3])  # frozen after it


def test_alternating_flip_shows_each_image_the_other_way_round_every_next_epoch():
    """Labels name the images: in epoch 0 some are mirrored and some not, and in each
    later epoch every image is the other way round from the epoch before."""
    x = np.arange(40 * 2 * 3, dtype="float32").reshape(40, 2, 3, 1)
    batches, callback = alternating_flip(x, np.arange(40), batch_size=16)
    mirrored = []
    for epoch in range(3):
        callback.on_epoch_begin(epoch)
        seen = {}
        for images, labels in batches:
            for image, label in zip(images.numpy(), labels.numpy(), strict=True):
                assert np.array_equal(image, x[label]) or np.array_equal(image, x[label, :, ::-1])
                seen[int(label)] = not np.array_equal(image, x[label])
        assert sorted(seen) == list(range(40))  # every image once an epoch
        mirrored.append(np.array([seen[i] for i in range(40)]))
    assert 0 < mirrored[0].sum() < 40
    assert np.all(mirrored[1] != mirrored[0]) and np.all(mirrored[2] == mirrored[0])
