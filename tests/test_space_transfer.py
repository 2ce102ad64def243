"""search_spaces.transfer: backbones, weights from the Keras cache or a file, fine-tuning."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import optuna
import pytest
from optuna.trial import FixedTrial
from sklearn.datasets import load_digits

from automl import UsageError
from automl.spaces import HyperParameters, ModelSpec
from search_spaces import transfer

optuna.logging.set_verbosity(optuna.logging.WARNING)

MOBILENET_V2_224 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
SMALL = {**transfer.MOBILENET_FROZEN, "image_size": 32}  # the starting point, but fast
NO_WEIGHTS = {"weights": "none"}


@pytest.fixture(autouse=True)
def _empty_keras_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test sees its own empty Keras cache, whatever this machine has cached."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras"


def _spec(shape=(8, 8, 1), n_train=200, task="classification") -> ModelSpec:
    return ModelSpec(
        input_shape=shape,
        kind="image",
        task=task,
        num_classes=10 if task == "classification" else 1,
        n_train=n_train,
        max_epochs=1,
    )


def _build(point: dict, overrides: dict | None = None, spec: ModelSpec | None = None):
    trial = FixedTrial(point)
    hp = HyperParameters(trial, overrides=overrides)
    return transfer.build(hp, spec or _spec()), hp, trial


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Overrides that load a local MobileNetV2 weights file: the pretrained code path
    (frozen or fine-tuned layers, frozen batch norm) without ImageNet files."""
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2.weights.h5"
    keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg"
    ).save_weights(path)
    keras.utils.clear_session()
    return {"weights": str(path)}


def _digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n of scikit-learn's 8x8 digits as raw 0-255 images, shape (n, 8, 8, 1)."""
    digits = load_digits()
    images = (digits.images[:n] * (255.0 / 16.0)).astype("float32")[..., None]
    return images, digits.target[:n].astype("int32")


def _fine_tune_point(fraction: float) -> dict:
    point = {k: v for k, v in SMALL.items() if k != "learning_rate"}
    return {**point, "fine_tune": fraction, "fine_tune_learning_rate": 1e-4}


def test_starting_point_is_exactly_one_point_of_the_space(pretrained):
    """The starting point names every sampled param; `weights` is fixed, not sampled."""
    trial = FixedTrial(transfer.MOBILENET_FROZEN)
    hp = HyperParameters(trial, overrides=pretrained)
    transfer.build(hp, _spec())
    assert trial.params == transfer.MOBILENET_FROZEN
    assert hp.values["weights"] == pretrained["weights"] and "weights" in hp.fixed


def test_from_scratch_mobilenet_v2_trains_one_epoch_on_digits():
    """weights="none": 8x8 grayscale digits are resized to 32x32 RGB inside the model; the
    whole backbone trains, batch norm included (its statistics move), with no `fine_tune`
    to sample."""
    x, y = _digits(128)
    keras.utils.set_random_seed(0)
    model, hp, trial = _build(SMALL, NO_WEIGHTS, _spec(n_train=len(x)))
    assert "fine_tune" not in trial.params and "learning_rate" in trial.params
    assert model.get_layer("resize").output.shape[1:] == (32, 32, 1)
    assert model.get_layer("gray_to_rgb").output.shape[1:] == (32, 32, 3)
    backbone = model.get_layer("backbone")
    assert all(la.trainable for la in backbone.layers)
    conv = next(la for la in backbone.layers if isinstance(la, keras.layers.Conv2D))
    norm = next(la for la in backbone.layers if isinstance(la, keras.layers.BatchNormalization))
    kernel, moving_mean = conv.kernel.numpy(), norm.moving_mean.numpy()
    model.run_eagerly = True  # tracing the full backward graph costs ~25 s; 2 steps do not
    history = model.fit(x, y, epochs=1, batch_size=hp.fit_kwargs["batch_size"], verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.allclose(conv.kernel.numpy(), kernel)
    assert not np.allclose(norm.moving_mean.numpy(), moving_mean)
    probabilities = model.predict(x[:5], verbose=0)
    assert probabilities.shape == (5, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)


def test_a_local_weights_file_is_loaded(tmp_path):
    """weights = "/path/file.weights.h5" loads that file into the backbone."""
    saved = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg"
    )
    path = tmp_path / "mobilenet_v2.weights.h5"
    saved.save_weights(path)
    model, hp, _ = _build(SMALL, {"weights": str(path)})
    assert hp.values["weights"] == str(path)
    loaded = model.get_layer("backbone").get_weights()
    assert len(loaded) == len(saved.get_weights())
    for got, want in zip(loaded, saved.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)


def test_imagenet_weights_are_read_from_the_keras_cache(_empty_keras_cache):
    """A no-top file under $KERAS_HOME/models makes its backbone available and is loaded
    (MobileNetV2 falls back to its 224-px file at other sizes); an uncached backbone's
    error then points at the cached ones."""
    assert transfer.backbones_available() == []
    reference = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg"
    )
    (_empty_keras_cache / "models").mkdir(parents=True)
    reference.save(_empty_keras_cache / "models" / MOBILENET_V2_224)  # the legacy .h5 format
    assert transfer.backbones_available() == ["mobilenet_v2"]
    model, _, _ = _build(SMALL)
    loaded = model.get_layer("backbone").get_weights()
    for got, want in zip(loaded, reference.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(UsageError, match=r"narrow backbone to the cached \['mobilenet_v2'\]"):
        _build({**SMALL, "backbone": "resnet50_v2"})


def test_imagenet_weights_missing_from_the_cache_is_a_usage_error(_empty_keras_cache):
    """No download: one line naming the file, the folder searched and the three fixes."""
    with pytest.raises(UsageError) as caught:
        _build(SMALL)
    message = str(caught.value)
    assert "\n" not in message
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5" in message
    assert str(_empty_keras_cache / "models") in message
    assert 'weights = "/path/' in message and 'weights = "none"' in message
    assert not (_empty_keras_cache / "models").exists()  # nothing was fetched or created

    with pytest.raises(UsageError, match=r"efficientnetb0_notop\.h5 is not in"):
        _build({**SMALL, "backbone": "efficientnet_b0"})


def test_a_missing_weights_path_is_a_usage_error(tmp_path):
    """A weights path that does not exist is named in a UsageError."""
    missing = tmp_path / "nope.weights.h5"
    with pytest.raises(UsageError, match=r"weights file '.*nope\.weights\.h5' .* not found"):
        _build(SMALL, {"weights": str(missing)})


def test_fine_tune_fraction_sets_trainable_backbone_layers(pretrained):
    """0.0 freezes the pretrained backbone; 1.0 trains every layer but batch norm; 0.25
    trains the top layers only, and a training step leaves batch norm's statistics as
    loaded."""
    frozen, _, _ = _build(SMALL, pretrained)
    assert frozen.get_layer("backbone").trainable_weights == []

    def split(model):
        backbone = model.get_layer("backbone")
        norm = [la for la in backbone.layers if isinstance(la, keras.layers.BatchNormalization)]
        return backbone, norm, [la for la in backbone.layers if la not in norm]

    full, _, _ = _build(_fine_tune_point(1.0), pretrained)
    backbone, batch_norm, others = split(full)
    assert batch_norm and all(not la.trainable for la in batch_norm)
    expected = sum(len(la.weights) for la in others)
    assert len(backbone.trainable_weights) == expected > 0

    model, _, _ = _build(_fine_tune_point(0.25), pretrained)
    backbone, batch_norm, others = split(model)
    assert 0 < len(backbone.trainable_weights) < expected
    assert others[-1].trainable and not others[1].trainable  # top trains, bottom frozen
    head, top_norm = model.get_layer("output"), batch_norm[-1]
    bias, moving_mean = head.bias.numpy(), top_norm.moving_mean.numpy()
    x, y = _digits(16)
    model.run_eagerly = True  # one step: skip tracing
    model.train_on_batch(x, y)
    assert not np.allclose(head.bias.numpy(), bias)  # a real step was taken
    np.testing.assert_array_equal(top_norm.moving_mean.numpy(), moving_mean)


def test_each_learning_rate_is_sampled_only_where_it_acts(pretrained):
    """A frozen backbone samples `learning_rate` (head-only range), a fine-tuned one
    `fine_tune_learning_rate` (lower range); never both."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=6))
    narrow = {**pretrained, "backbone": ["mobilenet_v2"], "image_size": [32]}
    seen = set()
    for _ in range(2):  # seed 6 draws a frozen point, then a fine-tuned one
        trial = study.ask()
        transfer.build(HyperParameters(trial, overrides=narrow), _spec())
        frozen = trial.params["fine_tune"] == 0.0
        name = "learning_rate" if frozen else "fine_tune_learning_rate"
        other = "fine_tune_learning_rate" if frozen else "learning_rate"
        assert name in trial.params and other not in trial.params
        low, high = (1e-4, 1e-2) if frozen else (1e-5, 1e-3)
        assert low <= trial.params[name] <= high
        seen.add(name)
        study.tell(trial, 0.0)
        keras.utils.clear_session()
    assert seen == {"learning_rate", "fine_tune_learning_rate"}


@pytest.mark.parametrize(
    ("backbone", "layer", "preprocess"),
    [
        ("mobilenet_v2", "scale_to_pm1", keras.applications.mobilenet_v2.preprocess_input),
        ("resnet50_v2", "scale_to_pm1", keras.applications.resnet_v2.preprocess_input),
        ("densenet121", "imagenet_standardize", keras.applications.densenet.preprocess_input),
    ],
)
def test_input_scaling_matches_the_applications_preprocess_input(backbone, layer, preprocess):
    """The scaling layer in front of the backbone computes what keras' own preprocess_input
    does to raw RGB pixels."""
    model, _, _ = _build({**SMALL, "backbone": backbone}, NO_WEIGHTS, _spec(shape=(32, 32, 3)))
    scaled = keras.Model(model.inputs, model.get_layer(layer).output)
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    want = preprocess(pixels.copy())
    np.testing.assert_allclose(scaled.predict(pixels, verbose=0), want, atol=1e-5)


def test_efficientnet_imagenet_weights_standardize_like_keras(_empty_keras_cache):
    """Loaded from the cache by path, EfficientNetB0 still standardizes its input with the
    ImageNet mean and std, as keras' weights="imagenet" graph does."""
    reference = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg"
    )
    (_empty_keras_cache / "models").mkdir(parents=True)
    reference.save(_empty_keras_cache / "models" / "efficientnetb0_notop.h5")
    model, _, _ = _build({**SMALL, "backbone": "efficientnet_b0"}, spec=_spec(shape=(32, 32, 3)))
    backbone = model.get_layer("backbone")
    norm = next(la for la in backbone.layers if isinstance(la, keras.layers.Normalization))
    standardize = keras.Model(backbone.inputs, norm.output)
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    want = (pixels / 255.0 - mean) / std
    np.testing.assert_allclose(standardize.predict(pixels, verbose=0), want, atol=1e-4)


@pytest.mark.slow  # 15-25 s: beyond the default suite's 15 minutes
def test_the_model_takes_raw_pixels_and_loads_in_safe_mode(tmp_path):
    """No Lambda layers: the saved model loads with safe_mode=True and predicts the same;
    two-channel images are mixed to RGB by a frozen 1x1 convolution."""
    spec = _spec(shape=(8, 8, 2))
    model, _, _ = _build(SMALL, NO_WEIGHTS, spec)
    assert not any(isinstance(la, keras.layers.Lambda) for la in model.layers)
    assert not model.get_layer("to_rgb").trainable
    pixels = np.random.default_rng(0).uniform(0, 255, (3, 8, 8, 2)).astype("float32")
    path = tmp_path / "transfer.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    np.testing.assert_allclose(
        loaded.predict(pixels, verbose=0), model.predict(pixels, verbose=0), atol=1e-6
    )


def test_regression_spec_builds_one_output_unit():
    """On a regression spec the head is one linear unit."""
    model, _, _ = _build(SMALL, NO_WEIGHTS, _spec(task="regression"))
    assert tuple(model.outputs[0].shape) == (None, 1)
    assert model.loss == "mean_squared_error"
