"""automl.data._images.load_image_folder: user image folders, both layouts, every rule.

Folders are built in tmp_path from real CIFAR-10 JPEGs (the session slice of
../shared/data), plus Pillow re-encodings of them at other sizes, in grayscale, and
files that are not images at all.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from automl import UsageError
from automl.data import load_dataset
from automl.data._images import ResizeEncoder, load_image_folder
from tests.conftest import CIFAR_CLASSES, CIFAR_TEST_PER_CLASS, CIFAR_TRAIN_PER_CLASS


@pytest.fixture(autouse=True)
def _fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test decodes into its own cache, so warnings and decoding are its own."""
    monkeypatch.setenv("AUTOML_CACHE_DIR", str(tmp_path / "cache"))


def _jpegs(cifar_root: Path, name: str, n: int, split: str = "train") -> list[Path]:
    return sorted((cifar_root / "cifar10" / split / name).glob("*.jpg"))[:n]


def _fill(folder: Path, cifar_root: Path, classes: dict[str, int], split: str = "train") -> Path:
    """folder/<class>/ with the first n real JPEGs of that CIFAR-10 class."""
    for name, n in classes.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for path in _jpegs(cifar_root, name, n, split):
            shutil.copy(path, folder / name / path.name)
    return folder


def test_flat_layout_holds_out_a_fixed_stratified_fifth(cifar_root, tmp_path):
    """path/<class>/*.jpg: labels are the sorted folder names, 20 % stratified test split."""
    folder = _fill(tmp_path / "pets", cifar_root, {"dog": 10, "cat": 10, "horse": 10})
    (folder / "notes.txt").write_text("not an image, not a class")
    (folder / ".ipynb_checkpoints").mkdir()
    data = load_image_folder(folder)
    assert data.name == "pets" and data.kind == "image" and data.task == "classification"
    assert data.class_names == ["cat", "dog", "horse"]
    assert data.x_train.dtype == np.uint8 and data.x_train.shape[1:] == (32, 32, 3)
    assert np.bincount(data.y_test).tolist() == [2, 2, 2]
    assert len(data.x_train) + len(data.x_val) == 24
    assert data.encoder is None and data.source == str(folder)
    other = load_image_folder(folder, seed=1)  # the seed moves validation, never test
    np.testing.assert_array_equal(data.x_test, other.x_test)

    cat = np.asarray(Image.open(_jpegs(cifar_root, "cat", 1)[0]))
    rows = np.concatenate([data.x_train, data.x_val, data.x_test])
    labels = np.concatenate([data.y_train, data.y_val, data.y_test])
    assert labels[[np.array_equal(r, cat) for r in rows].index(True)] == 0  # "cat"


def test_train_and_test_folders_map_test_labels_to_train_classes(cifar_root, tmp_path):
    """path/train/<class>/ + path/test/<class>/ where test has a subset of train's classes."""
    folder = tmp_path / "zoo"
    _fill(folder / "train", cifar_root, {"bird": 10, "deer": 10, "frog": 10})
    _fill(folder / "test", cifar_root, {"frog": 3}, split="test")
    data = load_image_folder(folder)
    assert data.class_names == ["bird", "deer", "frog"]
    assert len(data.x_train) + len(data.x_val) == 30
    assert data.y_test.tolist() == [2, 2, 2]
    first = np.asarray(Image.open(_jpegs(cifar_root, "frog", 1, "test")[0]))
    np.testing.assert_array_equal(data.x_test[0], first)


def test_train_folder_without_test_holds_out_a_fifth(cifar_root, tmp_path):
    """Without path/test the test split is held out of train, as in the flat layout."""
    folder = tmp_path / "zoo"
    _fill(folder / "train", cifar_root, {"bird": 10, "deer": 10})
    data = load_image_folder(folder)
    assert len(data.x_test) == 4 and len(data.x_train) + len(data.x_val) == 16


def test_the_cifar10_copy_loads_as_a_user_folder(cifar_root):
    """The unpacked CIFAR-10 layout (train/ and test/, 10 classes) is such a folder, and
    gives the same labels and test pixels as the cifar10 built-in."""
    data = load_image_folder(cifar_root / "cifar10")
    builtin = load_dataset("cifar10", data_dir=cifar_root)
    assert data.class_names == CIFAR_CLASSES == builtin.class_names  # sorted = Keras' order
    assert len(data.x_test) == 10 * CIFAR_TEST_PER_CLASS
    assert len(data.x_train) + len(data.x_val) == 10 * CIFAR_TRAIN_PER_CLASS
    np.testing.assert_array_equal(data.x_test, builtin.x_test)
    np.testing.assert_array_equal(data.y_test, builtin.y_test)


def test_unreadable_files_are_skipped_with_one_warning_that_counts_them(
    cifar_root, tmp_path, caplog
):
    """A corrupt JPEG in train and another in test: one warning, naming 2 files, every load."""
    folder = tmp_path / "zoo"
    _fill(folder / "train", cifar_root, {"bird": 10, "deer": 10})
    _fill(folder / "test", cifar_root, {"bird": 2, "deer": 2}, split="test")
    (folder / "train" / "bird" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "test" / "deer" / "empty.png").write_bytes(b"")
    for _ in range(2):  # the second load comes from the cache and still says so
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="automl"):
            data = load_image_folder(folder)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, warnings
        assert "skipped 2 unreadable image files" in warnings[0] and str(folder) in warnings[0]
        assert len(data.x_train) + len(data.x_val) == 20 and len(data.x_test) == 4


def test_no_readable_image_is_a_usage_error(tmp_path):
    """Image-named files that Pillow cannot read, and nothing else: an error, not a crash."""
    for name in ("a", "b"):
        (tmp_path / "junk" / name).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "junk" / name / f"{i}.jpg").write_text("text, not pixels")
    with pytest.raises(UsageError, match=r"none of the 6 image files in .*junk could be read"):
        load_image_folder(tmp_path / "junk")


def test_layout_errors_name_what_was_found_and_the_expected_layout(tmp_path):
    """A missing folder, files without class folders, a single class with images."""
    with pytest.raises(UsageError, match=r"image folder .*missing is not a folder; expected"):
        load_image_folder(tmp_path / "missing")

    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "x.jpg").touch()
    with pytest.raises(
        UsageError, match=r"found no class folders in .*flat \(only 1 files\); expected .*<class>/"
    ):
        load_image_folder(tmp_path / "flat")

    for name in ("a", "b"):
        (tmp_path / "one" / name).mkdir(parents=True)
    (tmp_path / "one" / "a" / "x.jpg").touch()
    with pytest.raises(
        UsageError, match=r"found 1 class folder with images in .*one \(a\); a classifier needs"
    ):
        load_image_folder(tmp_path / "one")


def test_test_classes_must_be_among_train_classes(cifar_root, tmp_path):
    """A test class that train lacks cannot be labelled: named in the error."""
    folder = tmp_path / "zoo"
    _fill(folder / "train", cifar_root, {"bird": 10, "deer": 10})
    _fill(folder / "test", cifar_root, {"bird": 2, "ship": 2}, split="test")
    with pytest.raises(UsageError, match=r"test has class folders that .*train lacks \(ship\)"):
        load_image_folder(folder)


def test_too_few_images_in_a_class_is_a_usage_error(cifar_root, tmp_path):
    """Stratified test and validation splits need every class on both sides of both."""
    folder = _fill(tmp_path / "few", cifar_root, {"bird": 10, "deer": 3})
    with pytest.raises(UsageError, match=r"class 'deer' has 3 readable images .*at least 8"):
        load_image_folder(folder)


@pytest.fixture
def mixed_folder(cifar_root: Path, tmp_path: Path) -> Path:
    """Mostly 32x32 RGB JPEGs, plus one upscaled to 48x48 and one grayscale, as PNG."""
    folder = _fill(tmp_path / "mixed", cifar_root, {"ship": 10, "truck": 10})
    big = Image.open(_jpegs(cifar_root, "ship", 11)[10]).resize((48, 48), Image.Resampling.BICUBIC)
    big.save(folder / "ship" / "big.png")
    Image.open(_jpegs(cifar_root, "truck", 11)[10]).convert("L").save(folder / "truck" / "g.png")
    return folder


def test_mixed_sizes_and_modes_become_one_rgb_size_with_a_resize_encoder(
    mixed_folder, cifar_root, caplog
):
    """Every image is resized to the most common size and made RGB; the encoder keeps the
    arrays as they are and remembers that size for the exported model."""
    with caplog.at_level(logging.WARNING, logger="automl"):
        data = load_image_folder(mixed_folder)
    assert any("have 2 different sizes" in r.getMessage() for r in caplog.records)
    assert data.x_train.shape[1:] == (32, 32, 3)
    assert data.encoder == ResizeEncoder(32, 32, 3)
    encoded = data.encode()
    assert encoded.x_train is data.x_train and encoded.kind == "image"
    assert encoded.wrap == data.encoder.wrap

    rows = np.concatenate([data.x_train, data.x_val, data.x_test])
    gray = [r for r in rows if np.array_equal(r[..., 0], r[..., 1])]
    assert gray and np.array_equal(gray[0][..., 0], gray[0][..., 2])  # L -> RGB repeats
    original = np.asarray(Image.open(_jpegs(cifar_root, "ship", 11)[10])).astype(float)
    closest = min(np.abs(r.astype(float) - original).mean() for r in rows)
    assert closest < 8, "the 48x48 copy came back as (close to) the 32x32 original"


def test_wrapped_model_takes_images_of_any_size(mixed_folder, tmp_path):
    """wrap(model) resizes first: a model built for 32x32 predicts on 48x48 and 20x24
    images, gives the unwrapped model's answer at 32x32, and survives a .keras round trip."""
    import keras

    data = load_image_folder(mixed_folder)
    model = keras.Sequential(
        [
            keras.Input(shape=data.input_shape),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(4, 3),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    wrapped = data.encode().wrap(model)
    big = np.stack([np.asarray(Image.fromarray(x).resize((48, 48))) for x in data.x_test])
    assert wrapped.predict(big, verbose=0).shape == (len(big), 2)
    assert wrapped.predict(big[:, :20, :24], verbose=0).shape == (len(big), 2)
    np.testing.assert_allclose(
        wrapped.predict(data.x_test, verbose=0), model.predict(data.x_test, verbose=0), atol=1e-5
    )
    wrapped.save(tmp_path / "wrapped.keras")
    restored = keras.saving.load_model(tmp_path / "wrapped.keras")
    np.testing.assert_allclose(
        restored.predict(big, verbose=0), wrapped.predict(big, verbose=0), atol=1e-5
    )
