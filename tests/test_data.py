"""automl.data: the dataset table, stratified disjoint splits, local CIFAR-10 copies."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sklearn import datasets as sk

from automl import UsageError
from automl.data import DATASETS, load_dataset
from tests.conftest import CIFAR_CLASSES, CIFAR_TEST_PER_CLASS, CIFAR_TRAIN_PER_CLASS, cli_env


def _rows(x: np.ndarray, y: np.ndarray) -> Counter:
    """A multiset of (example, label) pairs; digits has duplicate images, so count them."""
    return Counter((row.tobytes(), int(label)) for row, label in zip(x, y, strict=True))


def test_dataset_table_lists_sources_and_default_spaces():
    """Every built-in dataset names its source, a registered default space and epochs."""
    from search_spaces import SPACES

    assert {"cifar10", "mnist", "fashion_mnist", "digits", "iris", "wine", "breast_cancer"} <= set(
        DATASETS
    )
    for info in DATASETS.values():
        assert info.source in ("keras", "sklearn")
        assert info.default_space in SPACES
        assert info.default_epochs >= 1


def test_unknown_dataset_is_a_usage_error_listing_the_names():
    """An unknown name fails before anything loads, listing the valid names."""
    with pytest.raises(UsageError, match=r"unknown dataset 'nope'; choose one of: cifar10, .*iris"):
        load_dataset("nope")


def test_digits_splits_are_a_stratified_partition():
    """Train, validation and test are disjoint and together are exactly the original data."""
    data = load_dataset("digits", seed=0)
    bunch = sk.load_digits()
    n = len(bunch.target)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (1149, 288, 360)
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == n

    whole = _rows(bunch.data.astype("float32"), bunch.target)
    parts = [
        _rows(data.x_train, data.y_train),
        _rows(data.x_val, data.y_val),
        _rows(data.x_test, data.y_test),
    ]
    assert parts[0] + parts[1] + parts[2] == whole  # a partition: nothing lost, nothing copied

    overall = np.bincount(bunch.target) / n
    for y in (data.y_train, data.y_val, data.y_test):  # stratified: class shares kept
        share = np.bincount(y, minlength=10) / len(y)
        assert np.abs(share - overall).max() < 0.01

    assert data.kind == "vector" and data.task == "classification"
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.class_names == [str(i) for i in range(10)]
    assert data.input_shape == (64,) and data.num_classes == 10
    assert data.describe()["n_test"] == 360


def test_test_split_is_fixed_while_the_seed_moves_validation():
    """The seed reshuffles train/validation, never the test rows (every study scores alike)."""
    a, b = load_dataset("digits", seed=0), load_dataset("digits", seed=1)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_val, b.x_val)
    assert _rows(a.x_train, a.y_train) + _rows(a.x_val, a.y_val) == _rows(
        b.x_train, b.y_train
    ) + _rows(b.x_val, b.y_val)
    # Same seed, same split.
    np.testing.assert_array_equal(a.x_val, load_dataset("digits", seed=0).x_val)


def test_sklearn_features_stay_raw():
    """Vector data is not standardized by the data layer: models take raw features."""
    data = load_dataset("iris")
    raw = {row.tobytes() for row in sk.load_iris().data.astype("float32")}
    assert all(row.tobytes() in raw for row in data.x_test)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (96, 24, 30)


def test_cifar10_loads_from_a_local_image_folder(cifar_root, cifar_cache):
    """`data_dir` holding cifar10/train|test/<class>/*.jpg gives uint8 HxWxC pixels, labelled
    in keras's class order, with a stratified validation split carved from train."""
    data = load_dataset("cifar10", data_dir=cifar_root)
    n_train = CIFAR_TRAIN_PER_CLASS * 10
    assert data.kind == "image"
    assert data.x_train.dtype == np.uint8 and data.x_train.shape[1:] == (32, 32, 3)
    assert len(data.x_train) + len(data.x_val) == n_train
    assert len(data.x_val) == n_train // 5
    assert len(data.x_test) == CIFAR_TEST_PER_CLASS * 10
    assert data.class_names == CIFAR_CLASSES
    assert np.bincount(data.y_val, minlength=10).tolist() == [n_train // 50] * 10
    assert np.bincount(data.y_test, minlength=10).tolist() == [CIFAR_TEST_PER_CLASS] * 10
    assert data.source == str(cifar_root / "cifar10")
    assert list(cifar_cache.glob("cifar10-*.npz")), "decoded arrays are cached"


def _copy_slice(cifar_root: Path, target: Path, per_class: int) -> Path:
    """A smaller copy of the slice at target/{train,test}/<class>/."""
    for split in ("train", "test"):
        for name in CIFAR_CLASSES:
            (target / split / name).mkdir(parents=True)
            files = sorted((cifar_root / "cifar10" / split / name).glob("*.jpg"))[:per_class]
            for path in files:
                shutil.copy(path, target / split / name / path.name)
    return target


def test_cifar10_folder_may_be_the_data_dir_itself(cifar_root, tmp_path, monkeypatch):
    """`data_dir` may point straight at the folder holding train/ and test/."""
    monkeypatch.setenv("AUTOML_CACHE_DIR", str(tmp_path / "cache"))
    folder = _copy_slice(cifar_root, tmp_path / "copy", per_class=5)
    data = load_dataset("cifar10", data_dir=folder)
    assert len(data.x_train) + len(data.x_val) == 50 and len(data.x_test) == 50


def test_cifar10_from_an_archive_via_automl_data_dir(cifar_root, tmp_path, monkeypatch):
    """A `cifar10-jpg.tar.xz` in AUTOML_DATA_DIR is unpacked once into the cache and used."""
    folder = _copy_slice(cifar_root, tmp_path / "copy", per_class=5)
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    with tarfile.open(shelf / "cifar10-jpg.tar.xz", "w:xz") as tar:
        tar.add(folder / "train", arcname="train")
        tar.add(folder / "test", arcname="test")
    cache = tmp_path / "cache"
    monkeypatch.setenv("AUTOML_CACHE_DIR", str(cache))
    monkeypatch.setenv("AUTOML_DATA_DIR", str(shelf))
    data = load_dataset("cifar10")
    assert len(data.x_test) == 50
    assert list(cache.glob("cifar10-*/.unpacked"))


def test_decode_cache_is_reused(cifar_root, tmp_path, monkeypatch):
    """The second load reads the decoded .npz, not the JPEGs (decoding is the slow part)."""
    monkeypatch.setenv("AUTOML_CACHE_DIR", str(tmp_path / "cache"))
    folder = _copy_slice(cifar_root, tmp_path / "copy", per_class=5)
    first = load_dataset("cifar10", data_dir=folder)
    for jpg in folder.rglob("*.jpg"):  # unreadable now: only the cache can answer
        jpg.write_bytes(b"not a jpeg")
    second = load_dataset("cifar10", data_dir=folder)
    np.testing.assert_array_equal(first.x_test, second.x_test)


def test_decode_cache_notices_new_images(cifar_root, tmp_path, monkeypatch):
    """Adding images to a class folder after a first load must show up in the next load."""
    monkeypatch.setenv("AUTOML_CACHE_DIR", str(tmp_path / "cache"))
    folder = _copy_slice(cifar_root, tmp_path / "copy", per_class=5)
    before = load_dataset("cifar10", data_dir=folder)
    extra = sorted((cifar_root / "cifar10" / "test" / "cat").glob("*.jpg"))[-1]
    shutil.copy(extra, folder / "test" / "cat" / "added.jpg")
    after = load_dataset("cifar10", data_dir=folder)
    assert len(after.x_test) == len(before.x_test) + 1


def test_data_dir_that_is_not_a_folder_is_a_usage_error(tmp_path):
    """A --data-dir that does not exist is named in a usage error."""
    with pytest.raises(UsageError, match=r"^data_dir .*missing is not a folder"):
        load_dataset("cifar10", data_dir=tmp_path / "missing")


@pytest.mark.slow  # 20-50 s on a loaded day: beyond the default suite's 15 minutes
def test_no_local_copy_and_no_download_names_both_fixes(tmp_path):
    """Without a copy and without network the error says: --data-dir/AUTOML_DATA_DIR, or download.

    Runs in a fresh process whose HOME and KERAS_HOME are empty, so no keras cache can answer.
    """
    home, empty = tmp_path / "home", tmp_path / "empty"
    home.mkdir()
    empty.mkdir()
    code = textwrap.dedent(f"""
        from automl import UsageError
        from automl.data import load_dataset
        try:
            load_dataset("cifar10", data_dir={str(empty)!r})
        except UsageError as exc:
            print("USAGE:" + str(exc))
        else:
            print("DOWNLOADED")
    """)
    env = cli_env(HOME=str(home), KERAS_HOME=str(home / ".keras"))
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    if "DOWNLOADED" in done.stdout:
        pytest.skip("this machine can download CIFAR-10, so the offline error cannot be shown")
    message = next(line for line in done.stdout.splitlines() if line.startswith("USAGE:"))
    assert "cifar10 is not available" in message
    assert "data_dir/AUTOML_DATA_DIR" in message
    assert str(empty) in message
    assert "download" in message
    assert "\n" not in message
