"""The fast image recipe: patch whitening, flip TTA, weight averaging, bad images.

Real data throughout: a CIFAR-10 slice unpacked from the shared archive (conftest's
`cifar_root`) and scikit-learn's digits as 8x8 grayscale images.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import optuna
import pytest
from optuna.trial import FixedTrial

from automl.data import from_arrays, load_data
from automl.engine._setup import model_spec
from automl.models import save_plain
from automl.spaces import HyperParameters, ModelSpec
from automl.spaces.blocks import augment, patch_whitening, with_flip_tta
from automl.spaces.whitening import MIN_IMAGES, fit_whitening
from benchmarks.recipes import ABLATIONS
from search_spaces import auto, cnn
from tests._digits import digits_as
from tests.conftest import cli_env

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def cifar(cifar_root: Path, cifar_cache: Path):
    """The CIFAR-10 slice (1,040 training images) and its spec, as a search makes them."""
    data = load_data("cifar10", data_dir=cifar_root)
    return data, model_spec(data, data.encode(None), 1)


def _recipe_model(spec: ModelSpec, **changes) -> tuple[keras.Model, HyperParameters]:
    keras.utils.set_random_seed(0)
    point = {**cnn.starting_points(spec)[0], **changes}
    hp = HyperParameters(FixedTrial(point))
    return cnn.build(hp, spec), hp


def _whiten(model: keras.Model) -> keras.layers.Conv2D:
    return model.get_layer("whiten")


def test_model_spec_carries_a_sample_of_training_images(cifar):
    """Image specs hold a uint8 sample of the training split (all of a small one)."""
    data, spec = cifar
    assert spec.image_sample.dtype == np.uint8
    assert spec.image_sample.shape == (len(data.x_train), 32, 32, 3)
    digits = from_arrays(*digits_as("sequence"), kind="sequence")
    assert model_spec(digits, digits.encode(None), 1).image_sample is None


def test_model_spec_decodes_a_sample_of_a_streamed_folder(cifar_root, tmp_path, monkeypatch):
    """Image folders too large to hold decoded still give the spec its pixel sample."""
    import shutil

    monkeypatch.setenv("AUTOML_MEMORY_BUDGET", "1K")
    monkeypatch.setenv("AUTOML_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("cat", "ship"):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for path in sorted((cifar_root / "cifar10" / "train" / name).glob("*.jpg"))[:20]:
            shutil.copy(path, tmp_path / "pics" / name / path.name)
    data = load_data(str(tmp_path / "pics"))
    encoded = data.encode(None)
    assert encoded.stream is not None
    sample = model_spec(data, encoded, 1).image_sample
    assert sample.dtype == np.uint8 and sample.shape == (len(data.x_train), 32, 32, 3)
    assert sample.max() > 0


def test_patch_whitening_whitens_the_training_patches(cifar):
    """Fitted from the data: frozen, and its outputs on training patches have zero mean
    and (nearly) identity covariance."""
    _, spec = cifar
    raw, x = spec.inputs()
    model = keras.Model(raw, patch_whitening(x, spec))
    assert not _whiten(model).trainable
    out = model.predict(spec.image_sample[:400], verbose=0)
    half = out[..., : out.shape[-1] // 2].reshape(-1, out.shape[-1] // 2)  # v; the rest is -v
    np.testing.assert_allclose(half.mean(axis=0), 0.0, atol=0.1)
    covariance = np.cov(half, rowvar=False)
    # epsilon damps the weakest directions; the strong ones are unit-variance.
    np.testing.assert_allclose(np.diag(covariance)[-6:], 1.0, atol=0.15)
    off_diagonal = covariance - np.diag(np.diag(covariance))
    assert np.abs(off_diagonal).max() < 0.15


@pytest.mark.slow  # 15-25 s: beyond the default suite's 15 minutes
def test_patch_whitening_is_saved_and_loads_in_a_fresh_process(cifar, tmp_path):
    """The fitted kernel and bias are weights of the model: equal after a load in a new
    process (automl.load_model, safe mode)."""
    _, spec = cifar
    model, _ = _recipe_model(spec)
    save_plain(model, tmp_path / "m.keras")
    code = textwrap.dedent(f"""
        import numpy as np, automl
        model = automl.load_model({str(tmp_path / "m.keras")!r})
        layer = model.get_layer("whiten")
        np.savez({str(tmp_path / "w.npz")!r}, *layer.get_weights(), trainable=layer.trainable)
    """)
    subprocess.run([sys.executable, "-c", code], check=True, env=cli_env(), timeout=120)
    loaded = np.load(tmp_path / "w.npz")
    kernel, bias = spec.patch_whitening()
    np.testing.assert_array_equal(loaded["arr_0"], kernel)
    np.testing.assert_array_equal(loaded["arr_1"], bias)
    assert not loaded["trainable"]


def test_too_small_split_falls_back_with_one_warning(cifar, caplog):
    """Under MIN_IMAGES training images: the default initializer, trainable, and one
    warning per search however many trials build."""
    _, spec = cifar
    small = dataclasses.replace(spec, image_sample=spec.image_sample[: MIN_IMAGES - 1])
    small = dataclasses.replace(small, _derived={})
    assert fit_whitening(small.image_sample / 255.0) is None
    with caplog.at_level(logging.WARNING, logger="automl"):
        for _ in range(2):
            model, _ = _recipe_model(small)
            assert _whiten(model).trainable
    warnings = [r for r in caplog.records if "patch whitening" in r.getMessage()]
    assert len(warnings) == 1
    assert f"at least {MIN_IMAGES} training images" in warnings[0].getMessage()


@pytest.mark.slow  # 15-25 s: beyond the default suite's 15 minutes
def test_recipe_trains_one_epoch_and_its_flip_tta_export_predicts_the_same(cifar, tmp_path):
    """The recipe (whitening, GELU, Nesterov, label smoothing) trains on the slice; with
    flip TTA the exported .keras loads in a fresh process in plain Keras' safe mode
    (no automl), predicts what the in-process model predicts, and gives an image and
    its mirror image the same prediction."""
    data, spec = cifar
    model, hp = _recipe_model(spec)
    assert model.optimizer.nesterov
    history = model.fit(
        data.x_train, data.y_train, batch_size=hp.fit_kwargs["batch_size"], epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])
    tta = with_flip_tta(model)
    x = data.x_test[:16]
    here = tta.predict(x, verbose=0)
    mean = (model.predict(x, verbose=0) + model.predict(x[:, :, ::-1], verbose=0)) / 2
    np.testing.assert_allclose(here, mean, atol=1e-6)
    np.testing.assert_allclose(tta.predict(x[:, :, ::-1], verbose=0), here, atol=1e-6)
    save_plain(tta, tmp_path / "best_model.keras")
    np.save(tmp_path / "x.npy", x)
    code = textwrap.dedent(f"""
        import sys
        import keras, numpy as np
        model = keras.models.load_model({str(tmp_path / "best_model.keras")!r}, safe_mode=True)
        np.save({str(tmp_path / "y.npy")!r}, model.predict(np.load({str(tmp_path / "x.npy")!r})))
        assert "automl" not in sys.modules
    """)
    subprocess.run([sys.executable, "-c", code], check=True, env=cli_env(), timeout=120)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), here, atol=1e-5)


def test_shift_tta_averages_airbench_six_views_and_loads_in_safe_mode(tmp_path):
    """With shifts, TTA is half the flip pair and half the mirrored pairs of the image
    moved one pixel down-right and up-left with reflected borders (airbench's level 2,
    computed here with numpy on non-square images), and it saves and loads in safe mode."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 9, 2))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    images = np.random.default_rng(0).normal(size=(5, 6, 9, 2)).astype("float32")

    def predict(views: np.ndarray) -> np.ndarray:
        return model.predict(views, verbose=0)

    def pair(views: np.ndarray) -> np.ndarray:
        return (predict(views) + predict(views[:, :, ::-1])) / 2

    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    down_right, up_left = padded[:, :6, :9], padded[:, 2:, 2:]
    expected = pair(images) / 2 + (pair(down_right) + pair(up_left)) / 4
    tta = with_flip_tta(model, shifts=True)
    np.testing.assert_allclose(tta.predict(images, verbose=0), expected, atol=1e-6)
    tta.save(tmp_path / "tta.keras")
    loaded = keras.models.load_model(tmp_path / "tta.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, atol=1e-6)


def test_translation_shifts_training_images_by_whole_pixels(cifar):
    """Each translated training image is its original moved by whole pixels (bilinear
    shifts at fractional offsets blurred them, and cost the recipe a point), and the
    layers leave images unchanged at inference."""
    data, spec = cifar
    images = np.asarray(data.x_train[:16], dtype="float32")
    keras.utils.set_random_seed(0)  # before the layer draws its seed
    inputs = keras.Input(shape=images.shape[1:])
    shift = keras.Model(inputs, augment(inputs, "translate"))
    moved = np.asarray(shift(images, training=True))
    np.testing.assert_array_equal(np.asarray(shift(images, training=False)), images)
    side, most = images.shape[1], 4  # 10 % of 32 pixels rounds to at most 3
    inner = slice(most, side - most)
    offsets = []
    for original, shifted in zip(images, moved, strict=True):
        found = [
            (dy, dx)
            for dy in range(-most, most + 1)
            for dx in range(-most, most + 1)
            if np.array_equal(
                shifted[inner, inner],
                original[most - dy : side - most - dy, most - dx : side - most - dx],
            )
        ]
        assert found, "a translated image is not its original shifted by whole pixels"
        offsets.append(found[0])
    assert len(set(offsets)) > 1  # random shifts, not one
    assert max(max(abs(dy), abs(dx)) for dy, dx in offsets) <= 3


def test_weight_averaging_puts_the_average_in_the_model_each_epoch(cifar):
    """With EMA (a parameter of the space; off in the recipe, where it lost on CIFAR-10),
    the optimizer overwrites the weights with their average at every epoch's last step,
    so validation sees the averaged weights."""
    _, spec = cifar
    model, hp = _recipe_model(spec, weight_averaging="ema")
    steps = spec.steps_per_epoch(hp.fit_kwargs["batch_size"])
    assert model.optimizer.use_ema
    assert model.optimizer.ema_overwrite_frequency == steps


def _stage_convs(model: keras.Model) -> list[keras.layers.Conv2D]:
    return [c for c in model.layers if isinstance(c, keras.layers.Conv2D) and c.name != "whiten"]


def test_recipe_convolutions_start_as_the_identity(cifar):
    """With `identity_init` each 3x3 convolution with at least as many filters as inputs
    passes its input through on its first filters (the others keep he_normal), and the
    saved config names only Keras' own initializer."""
    _, spec = cifar
    model, _ = _recipe_model(spec)
    convs = _stage_convs(model)
    rng = np.random.default_rng(0)
    for conv in convs:
        inputs = conv.kernel.shape[2]
        x = rng.normal(size=(2, 8, 8, inputs)).astype("float32")
        y = keras.ops.convert_to_numpy(conv(x))
        np.testing.assert_allclose(y[..., :inputs], x, atol=1e-6)
        if conv.filters > inputs:
            assert np.std(y[..., inputs:]) > 0.1  # the rest is he_normal's, not zero
        assert conv.get_config()["kernel_initializer"]["class_name"] == "HeNormal"
    plain, _ = _recipe_model(spec, identity_init=False)
    conv = _stage_convs(plain)[0]
    assert not np.allclose(keras.ops.convert_to_numpy(conv.kernel)[1, 1, 0, 0], 1.0)


def test_recipe_batch_norm_follows_recent_batches_without_a_scale(cifar):
    """The recipe's batch norm: momentum 0.4 (measured; airbench's is 0.6), no scale; the space's
    default stays Keras' 0.99 with a scale (the modern CNN)."""
    _, spec = cifar
    model, _ = _recipe_model(spec)
    norms = [n for n in model.layers if isinstance(n, keras.layers.BatchNormalization)]
    assert len(norms) == 6
    assert all(n.momentum == 0.4 and not n.scale for n in norms)
    assert {v.name for n in norms for v in n.trainable_weights} == {"beta"}
    modern = cnn.build(HyperParameters(FixedTrial(cnn.MODERN)), spec)
    norms = [n for n in modern.layers if isinstance(n, keras.layers.BatchNormalization)]
    assert all(n.momentum == 0.99 and n.scale for n in norms)


@pytest.mark.parametrize("kernels_only", [True, False])
def test_decay_kernels_only_leaves_offsets_undecayed(cifar, kernels_only):
    """One optimizer step on zero gradients applies the weight decay alone: with
    `decay_kernels_only` the kernels shrink by (1 - lr * decay) and batch norm's
    offsets stay; without it (Keras' default) both shrink."""
    _, spec = cifar
    model, _ = _recipe_model(spec, schedule="constant", decay_kernels_only=kernels_only)
    optimizer, weights = model.optimizer, model.trainable_weights
    for weight in weights:
        weight.assign(keras.ops.ones(weight.shape))
    optimizer.apply([keras.ops.zeros(w.shape) for w in weights], weights)
    shrunk = 1 - cnn.FAST_RECIPE["learning_rate"] * cnn.FAST_RECIPE["weight_decay"]
    after = {w.name: float(keras.ops.convert_to_numpy(w).flat[0]) for w in weights}
    assert after["kernel"] == pytest.approx(shrunk)
    assert after["beta"] == pytest.approx(1.0 if kernels_only else shrunk)


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_each_ablation_is_exactly_one_point_of_the_space(cifar, name):
    """`benchmarks.recipes`' ablations change the recipe into another point of `cnn`:
    it builds, asking for no parameter the point lacks and holding no other."""
    _, spec = cifar
    point = {k: v for k, v in {**cnn.FAST_RECIPE, **ABLATIONS[name]}.items() if v is not None}
    trial = FixedTrial(point)
    cnn.build(HyperParameters(trial), spec)
    assert trial.params == point


def _images(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Real small image sets: 8x8 digits, digits upscaled to 24x24 grayscale, and
    non-square 8x24 strips of three digits."""
    x, y = digits_as("image")
    x, y = x[:600].astype("uint8"), y[:600]
    if kind == "grayscale 24x24":
        return np.repeat(np.repeat(x, 3, axis=1), 3, axis=2), y
    if kind == "non-square 8x24":
        return np.concatenate([x, np.roll(x, 1, 0), np.roll(x, 2, 0)], axis=2), y
    return x, y


@pytest.mark.parametrize("kind", ["digits 8x8", "grayscale 24x24", "non-square 8x24"])
def test_bad_images_adapt_the_recipe_and_never_crash(kind, caplog):
    """Grayscale, non-square and tiny images: the recipe builds and trains (with its
    stages adapted and one log line saying so where the map cannot halve three times)."""
    x, y = _images(kind)
    data = from_arrays(x, y, kind="image")
    spec = model_spec(data, data.encode(None), 1)
    with caplog.at_level(logging.INFO, logger="automl"):
        point = cnn.starting_points(spec)[0]
    adapted = [r for r in caplog.records if "fast recipe" in r.getMessage()]
    assert len(adapted) == (0 if kind == "grayscale 24x24" else 1)
    assert point["stem"] == "whiten"
    model = cnn.build(HyperParameters(FixedTrial(point)), spec)
    history = model.fit(data.x_train, data.y_train, batch_size=128, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    keras.utils.clear_session()


def test_images_too_small_to_whiten_leave_the_recipe_out(caplog):
    """3x3 images: the recipe is left out of the starting points, with one log line."""
    spec = ModelSpec(
        input_shape=(3, 3, 1), kind="image", task="classification", num_classes=2,
        n_train=100, max_epochs=1,
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="automl"):
        points = cnn.starting_points(spec)
    assert points == cnn.STARTING_POINTS[1:]
    assert ["left out" in r.getMessage() for r in caplog.records] == [True]


def test_auto_puts_the_recipe_first_for_images(cifar):
    """auto's first image starting point is the fast recipe (the tutorial CNN follows)."""
    _, spec = cifar
    first, second = auto.starting_points(spec)[:2]
    assert first == {"family": "cnn", **{f"cnn.{k}": v for k, v in cnn.FAST_RECIPE.items()}}
    assert second["cnn.optimizer"] == "adam"  # the tutorial CNN


def test_on_a_gpu_the_cnn_builds_in_mixed_precision_with_a_float32_head(cifar, monkeypatch):
    """Where Keras lists a GPU, the body's layers compute in bfloat16 and the softmax in
    float32; the global policy is restored afterwards. (No GPU here: the listing is faked.)"""
    _, spec = cifar
    monkeypatch.setattr(keras.distribution, "list_devices", lambda *a: ["gpu:0"])
    model, _ = _recipe_model(spec)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert {layer.dtype_policy.name for layer in convs} == {"mixed_bfloat16"}
    assert model.get_layer("output").dtype_policy.name == "float32"
    assert keras.config.dtype_policy().name == "float32"
