"""search_spaces.resnet: residual CNNs build at every point and the starting point trains."""

from __future__ import annotations

import keras
import numpy as np
import optuna
import pytest
from optuna.trial import FixedTrial
from sklearn.datasets import load_digits

from automl.spaces import HyperParameters, ModelSpec
from search_spaces import resnet

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _spec(
    shape: tuple[int, ...] = (32, 32, 3),
    *,
    task: str = "classification",
    classes: int = 10,
    n_train: int = 2000,
    max_epochs: int = 4,
) -> ModelSpec:
    return ModelSpec(
        input_shape=shape,
        kind="image",
        task=task,
        num_classes=classes if task == "classification" else 1,
        n_train=n_train,
        max_epochs=max_epochs,
        target_stats=(5.0, 2.0) if task == "regression" else None,
    )


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as raw 0-255 grayscale images, shape (n, 8, 8, 1)."""
    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).astype("float32")[..., None]
    return images, digits.target.astype("int32")


def _convs(model: keras.Model) -> list[keras.layers.Conv2D]:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


# Seeds whose first four points draw both block types.
@pytest.mark.parametrize(("shape", "seed"), [((8, 8, 1), 4), ((32, 32, 3), 2)])
def test_random_points_build_compiled_models(shape, seed):
    """Random points build compiled models with raw input and a softmax over the classes;
    feature maps never shrink below 2x2, and the bottleneck expansion is sampled only for
    bottleneck blocks."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(4):
        trial = study.ask()
        model = resnet.build(HyperParameters(trial), _spec(shape))
        assert model.compiled
        assert tuple(model.inputs[0].shape[1:]) == shape
        assert tuple(model.outputs[0].shape) == (None, 10)
        assert model.layers[-1].activation.__name__ == "softmax"
        assert min(min(c.output.shape[1:3]) for c in _convs(model)) >= 2
        bottleneck = trial.params["block_type"] == "bottleneck"
        assert ("bottleneck_expansion" in trial.params) == bottleneck
        study.tell(trial, 0.0)
        keras.utils.clear_session()


def test_starting_point_is_exactly_one_point_of_the_space():
    """The starting point names every param the space asks for there, and no other."""
    for point in resnet.STARTING_POINTS:
        trial = FixedTrial(point)  # raises if the space asks for a param the point lacks
        resnet.build(HyperParameters(trial), _spec())
        assert trial.params == point


def _pooled(model: keras.Model) -> keras.layers.Layer:
    return next(la for la in model.layers if isinstance(la, keras.layers.GlobalAveragePooling2D))


def test_fast_cifar_recipe_shape():
    """4 stages of one basic block, 24/48/96/192 filters, stride-2 downsampling with 1x1
    projection shortcuts where the shape changes, global average pooling."""
    model = resnet.build(HyperParameters(FixedTrial(resnet.FAST_CIFAR)), _spec())
    convs = _convs(model)
    three = [c.filters for c in convs if c.kernel_size == (3, 3)]
    ones = [c for c in convs if c.kernel_size == (1, 1)]
    assert three == [24, 24, 24, 48, 48, 96, 96, 192, 192]  # the stem, then 4 blocks
    assert [(c.filters, c.strides) for c in ones] == [(48, (2, 2)), (96, (2, 2)), (192, (2, 2))]
    assert [c.output.shape[1] for c in ones] == [16, 8, 4]
    assert len([la for la in model.layers if isinstance(la, keras.layers.Add)]) == 4
    assert _pooled(model).input.shape[1:] == (4, 4, 192)
    assert isinstance(model.optimizer, keras.optimizers.AdamW)


@pytest.mark.slow  # 15-25 s: beyond the default suite's 15 minutes
def test_starting_point_trains_on_real_digits():
    """One epoch of the starting point on 8x8 digits fits well above chance.

    Its 12 steps barely move batch norm's moving statistics (momentum 0.99), so the
    check is on the training metrics; held-out predictions are only checked for shape.
    """
    x, y = _digits()
    x_train, y_train, x_test = x[:1500], y[:1500], x[1500:]
    keras.utils.set_random_seed(0)
    spec = _spec((8, 8, 1), n_train=len(x_train), max_epochs=1)
    hp = HyperParameters(FixedTrial(resnet.FAST_CIFAR))
    model = resnet.build(hp, spec)
    history = model.fit(
        x_train, y_train, epochs=1, batch_size=hp.fit_kwargs["batch_size"], verbose=0
    )
    loss = history.history["loss"][0]
    assert np.isfinite(loss) and loss < np.log(10)  # chance: ln(10) = 2.30
    assert history.history["accuracy"][0] > 0.3  # chance: 0.1
    probabilities = model.predict(x_test, verbose=0)
    assert probabilities.shape == (len(x_test), 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)


def test_bottleneck_blocks_sample_their_expansion_only():
    """Bottleneck blocks expand to `bottleneck_expansion` x the stage width; basic blocks
    never sample that parameter."""
    point = {**resnet.FAST_CIFAR, "block_type": "bottleneck", "bottleneck_expansion": 4}
    trial = FixedTrial(point)
    model = resnet.build(HyperParameters(trial), _spec())
    assert trial.params == point
    expands = [c.filters for c in _convs(model) if c.kernel_size == (1, 1) and c.strides == (1, 1)]
    assert {24 * 4, 48 * 4, 96 * 4, 192 * 4} <= set(expands)
    assert _pooled(model).output.shape[-1] == 192 * 4

    basic = FixedTrial(resnet.FAST_CIFAR)
    resnet.build(HyperParameters(basic), _spec())
    assert "bottleneck_expansion" not in basic.params


def test_small_inputs_stop_downsampling_at_2x2():
    """Four stages on 8x8 digits halve the map twice (8 -> 4 -> 2), then keep 2x2."""
    point = {**resnet.FAST_CIFAR, "blocks_per_stage": 2, "width_multiplier": 0.5}
    model = resnet.build(HyperParameters(FixedTrial(point)), _spec((8, 8, 1)))
    adds = [la.output.shape[1:3] for la in model.layers if isinstance(la, keras.layers.Add)]
    assert adds == [(8, 8)] * 2 + [(4, 4)] * 2 + [(2, 2)] * 4
    assert _pooled(model).output.shape[-1] == 64  # 128 * 0.5


def test_regression_spec_builds_one_output_unit():
    """On a regression spec the head is one linear unit in raw target units, with MSE."""
    model = resnet.build(HyperParameters(FixedTrial(resnet.FAST_CIFAR)), _spec(task="regression"))
    assert tuple(model.outputs[0].shape) == (None, 1)
    assert model.loss == "mean_squared_error"
    assert model.get_layer("output").scale == 2.0 and model.get_layer("output").offset == 5.0
