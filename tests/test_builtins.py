"""Built-in keras.datasets sets offline (cifar100, imdb, reuters) and `check_builtins`.

imdb.npz and reuters.npz are small files in Keras' own cached format (object arrays of
word-rank lists), written here with numpy; cifar100 is a folder of real CIFAR-10 JPEGs
under cifar100's class names.
"""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from automl import UsageError
from automl.data import DATASETS, _check, load_dataset
from automl.data._check import check_builtins
from automl.data._keras import CLASS_NAMES, NUM_WORDS, read_word_ids
from tests.conftest import CIFAR_CLASSES, cli_env, run_cli


def _texts(rng: np.random.Generator, n: int) -> np.ndarray:
    """Keras' format: an object array of Python int lists (word ranks from 0), ragged."""
    texts = np.empty(n, dtype=object)
    for i in range(n):
        texts[i] = [int(w) for w in rng.integers(0, 30_000, size=int(rng.integers(5, 400)))]
    return texts


def _imdb(folder: Path, n: int = 40) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.arange(n) % 2
    np.savez(
        folder / "imdb.npz",
        x_train=_texts(rng, n),
        y_train=labels,
        x_test=_texts(rng, n),
        y_test=labels,
    )
    return folder / "imdb.npz"


def _reuters(folder: Path, per_topic: int = 8) -> Path:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.arange(46 * per_topic) % 46
    np.savez(folder / "reuters.npz", x=_texts(rng, len(labels)), y=labels)
    return folder / "reuters.npz"


def _assert_right_padded_ids(x: np.ndarray, length: int) -> None:
    assert x.dtype == np.int32 and x.shape[1] == length
    assert x.min() >= 0 and x.max() < NUM_WORDS
    assert (x[:, 0] == 1).all(), "every text starts with Keras' start id"
    for row in x:  # words are ids >= 3, so the first 0 starts the padding
        used = np.count_nonzero(row)
        assert (row[:used] > 0).all() and (row[used:] == 0).all()
    assert (x == 2).any(), "ranks beyond the vocabulary become the out-of-vocabulary id"
    assert (x[:, -1] == 0).any() and (x[:, -1] != 0).any(), "both padded and cut texts"


def test_imdb_loads_from_keras_file_in_data_dir(tmp_path):
    """DIR/imdb.npz gives right-padded int32 ids (256 long, < 20,000) and Keras' split."""
    path = _imdb(tmp_path / "shelf")
    data = load_dataset("imdb", data_dir=path.parent)
    assert data.kind == "text" and data.task == "classification"
    assert data.class_names == ["negative", "positive"]
    assert len(data.x_train) + len(data.x_val) == 40 and len(data.x_test) == 40
    for part in (data.x_train, data.x_val, data.x_test):
        _assert_right_padded_ids(part, 256)
    assert data.source == str(path)


def test_reuters_loads_from_automl_data_dir_with_keras_split(tmp_path, monkeypatch):
    """AUTOML_DATA_DIR/reuters.npz: Keras' 80/20 split, 200 ids, the 46 topics as names."""
    path = _reuters(tmp_path / "shelf")
    monkeypatch.setenv("AUTOML_DATA_DIR", str(path.parent))
    data = load_dataset("reuters")
    assert data.class_names == [str(i) for i in range(46)]
    assert len(data.x_train) + len(data.x_val) == int(46 * 8 * 0.8)
    assert len(data.x_test) == 46 * 8 - int(46 * 8 * 0.8)
    for part in (data.x_train, data.x_val, data.x_test):
        _assert_right_padded_ids(part, 200)


@pytest.mark.parametrize("name", ["imdb", "reuters"])
def test_offline_reading_matches_keras_load_data(name, tmp_path, monkeypatch):
    """The ids, labels and split equal keras.datasets.<name>.load_data(num_words=20000) on
    the same file (Keras pointed at it in place of its download)."""
    import keras

    path = (_imdb if name == "imdb" else _reuters)(tmp_path)
    module = sys.modules[f"keras.src.datasets.{name}"]
    monkeypatch.setattr(module, "get_file", lambda *args, **kwargs: str(path))
    (kx_train, ky_train), (kx_test, ky_test) = getattr(keras.datasets, name).load_data(
        num_words=NUM_WORDS
    )
    x_train, y_train, x_test, y_test = read_word_ids(name, path)
    assert x_train == [list(x) for x in kx_train] and x_test == [list(x) for x in kx_test]
    np.testing.assert_array_equal(y_train, ky_train)
    np.testing.assert_array_equal(y_test, ky_test)


class _Payload:
    """What a tampered file could carry: unpickling it would call print."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_file_that_is_not_keras_npz_is_a_usage_error(tmp_path, capsys):
    """A truncated file and one whose pickle calls a function: both refused, nothing runs."""
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "imdb.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(UsageError, match=r"imdb.npz is not Keras' imdb.npz .*; replace it with"):
        load_dataset("imdb", data_dir=tmp_path / "bad")

    (tmp_path / "evil").mkdir()
    texts = np.empty(1, dtype=object)
    texts[0] = _Payload()
    np.savez(tmp_path / "evil" / "imdb.npz", x_train=texts, y_train=[0], x_test=texts, y_test=[0])
    with pytest.raises(UsageError, match=r"UnpicklingError: refusing to load builtins.print"):
        load_dataset("imdb", data_dir=tmp_path / "evil")
    assert "must never run" not in capsys.readouterr().out
    assert pickle.dumps(_Payload())  # the payload itself is a valid pickle


@pytest.mark.slow  # 20-50 s on a loaded day: beyond the default suite's 15 minutes
def test_imdb_without_copy_or_network_names_where_it_looked(tmp_path):
    """No DIR/imdb.npz, empty Keras cache, no download: one line with the looked-at places
    and the fix. A fresh process, so Keras reads the empty HOME/KERAS_HOME."""
    home, empty = tmp_path / "home", tmp_path / "empty"
    home.mkdir()
    empty.mkdir()
    code = textwrap.dedent(f"""
        from automl import UsageError
        from automl.data import load_dataset
        try:
            load_dataset("imdb", data_dir={str(empty)!r})
        except UsageError as exc:
            print("USAGE:" + str(exc))
        else:
            print("DOWNLOADED")
    """)
    env = cli_env(HOME=str(home), KERAS_HOME=str(home / ".keras"))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    if "DOWNLOADED" in done.stdout:
        pytest.skip("this machine can download imdb, so the offline error cannot be shown")
    message = next(line for line in done.stdout.splitlines() if line.startswith("USAGE:"))
    assert "imdb is not available" in message
    assert str(empty) in message and str(home / ".keras" / "datasets") in message
    assert "imdb.npz" in message and "pass data_dir DIR" in message


def test_cifar100_loads_from_a_local_folder_with_fine_label_names(cifar_root, tmp_path):
    """DIR/cifar100/train|test/<fine label>/ gives 100 classes in Keras' label order."""
    names = CLASS_NAMES["cifar100"]
    assert len(names) == 100 == len(set(names)) and names == sorted(names)
    assert names[:2] == ["apple", "aquarium_fish"] and names[-1] == "worm"
    jpegs = sorted((cifar_root / "cifar10" / "train").rglob("*.jpg"))
    for split, per_class in (("train", 5), ("test", 1)):
        for i, name in enumerate(names):
            (tmp_path / "cifar100" / split / name).mkdir(parents=True)
            for j in range(per_class):
                jpg = jpegs[(i * 6 + j) % len(jpegs)]
                shutil.copy(jpg, tmp_path / "cifar100" / split / name / f"{j}.jpg")
    data = load_dataset("cifar100", data_dir=tmp_path)
    assert data.class_names == names and data.kind == "image"
    assert data.x_train.shape[1:] == (32, 32, 3) and data.x_train.dtype == np.uint8
    assert np.bincount(data.y_test).tolist() == [1] * 100
    assert len(data.x_train) + len(data.x_val) == 500


@pytest.fixture
def no_keras_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty HOME and KERAS_HOME: the real Keras cache of this machine never answers."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KERAS_HOME", str(home / "keras"))
    return home / "keras" / "datasets"


def test_check_builtins_reports_local_copies_cache_and_unavailable(
    cifar_root, tmp_path, no_keras_cache, monkeypatch
):
    """Local copies and Keras' cached files are available where found; the rest, without
    network, are not, with the fix; the network is probed once for all of them."""
    shelf = tmp_path / "shelf"
    _imdb(shelf)
    for name in CIFAR_CLASSES:
        (shelf / "cifar10" / "train" / name).mkdir(parents=True)
    (shelf / "cifar10" / "test").mkdir()
    no_keras_cache.mkdir(parents=True)
    (no_keras_cache / "mnist.npz").write_bytes(b"")  # presence is what counts
    probes = []
    monkeypatch.setattr(_check, "can_download", lambda: probes.append(1) or False)

    rows = {name: (ok, where) for name, ok, where in check_builtins(shelf)}
    assert list(rows) == list(DATASETS)
    assert rows["digits"] == (True, "bundled with scikit-learn")
    assert rows["cifar10"] == (True, str(shelf / "cifar10"))
    assert rows["imdb"] == (True, str(shelf / "imdb.npz"))
    assert rows["mnist"] == (True, str(no_keras_cache / "mnist.npz"))
    for name in ("cifar100", "fashion_mnist", "reuters"):
        assert rows[name] == (
            False,
            f"no local copy in {shelf} and no network; see README 'Offline datasets'",
        )
    assert probes == [1]


def test_check_builtins_offers_the_download_when_online(tmp_path, no_keras_cache, monkeypatch):
    """With the download host reachable, sets without a copy are available by download;
    an archive in AUTOML_DATA_DIR is reported as it is, without unpacking it."""
    monkeypatch.setattr(_check, "can_download", lambda: True)
    (tmp_path / "cifar100-jpg.tar.xz").write_bytes(b"")
    monkeypatch.setenv("AUTOML_DATA_DIR", str(tmp_path))
    rows = {name: (ok, where) for name, ok, where in check_builtins(None)}
    assert rows["cifar100"] == (True, str(tmp_path / "cifar100-jpg.tar.xz"))
    assert rows["reuters"] == (True, "download from keras.datasets")


def test_check_builtins_is_fast_and_imports_no_keras(tmp_path):
    """It answers without importing Keras/TensorFlow, probing the network at most once."""
    code = (
        "import sys, time; t = time.time(); from automl.data._check import check_builtins; "
        "rows = check_builtins(None); print(len(rows), round(time.time() - t, 1), "
        "'keras' in sys.modules or 'tensorflow' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=cli_env(HOME=str(tmp_path), KERAS_HOME=str(tmp_path / "k")),
        timeout=60,
    )
    count, seconds, imported = done.stdout.split()
    assert int(count) == len(DATASETS) and imported == "False"
    # Without Keras it takes ~1 s; 20 s leaves room for a loaded machine and one network
    # probe's timeout, while importing TensorFlow as well would be caught above.
    assert float(seconds) < 20


def test_datasets_check_on_the_command_line(tmp_path, no_keras_cache):
    """`automl datasets --check --data-dir DIR` prints a table of what is available."""
    _imdb(tmp_path / "shelf")
    done = run_cli(
        "datasets",
        "--check",
        "--data-dir",
        tmp_path / "shelf",
        cwd=tmp_path,
        env=cli_env(HOME=str(no_keras_cache.parent.parent), KERAS_HOME=str(no_keras_cache.parent)),
    )
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert lines["imdb"].split()[1] == "yes"  # the local copy (rich folds its long path)
    assert lines["iris"].split()[1:3] == ["yes", "bundled"]
    assert lines["name"].split() == ["name", "available", "from"]
