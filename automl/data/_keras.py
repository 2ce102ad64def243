"""`keras.datasets` sets, preferring a local copy so offline machines work.

Offline copies are looked up in `data_dir` (`--data-dir`), then `AUTOML_DATA_DIR` (DIR
below). Only if none is found does Keras load the set: from its own cache
(`~/.keras/datasets/`, or `$KERAS_HOME/datasets/`) when the file is there, else by
downloading it. The layouts:

- cifar10, cifar100, mnist, fashion_mnist: an image folder `DIR/<name>/train/<class>/*.jpg`
  with `DIR/<name>/test/<class>/*.jpg` (DIR itself may hold `train/` and `test/`), or an
  archive `DIR/<name>-jpg.tar.xz` (or `.tar.gz`) holding `train/` and `test/`, unpacked
  once into the cache. Class folders carry Keras' class names: cifar10's `airplane` ...
  `truck`, cifar100's 100 fine labels (`apple` ... `worm`), mnist's `0` ... `9`,
  fashion_mnist's `T-shirt_top`, `Trouser`, ... (a "/" becomes "_").
- imdb, reuters: Keras' own file, `DIR/imdb.npz` or `DIR/reuters.npz`, as downloaded from
  https://storage.googleapis.com/tensorflow/tf-keras-datasets/ (the file Keras caches as
  `~/.keras/datasets/imdb.npz`).

Text sets follow Keras' conventions (the 20,000 most frequent words; id 1 starts a text,
2 is out of vocabulary, words count from 3; reuters' 80/20 split after a shuffle with
seed 113) and are padded or cut at the end to 256 (imdb) or 200 (reuters) ids, 0 being
padding.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from automl import settings
from automl._errors import UsageError
from automl.data._dataset import Dataset
from automl.data._images import has_class_folders, load_split_folders, unpack_archive

logger = logging.getLogger("automl")

_CIFAR100 = """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge
bus butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch
crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo
keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse
mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy
porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail
snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger
tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"""

CLASS_NAMES: dict[str, list[str]] = {
    "cifar10": [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ],
    "cifar100": _CIFAR100.split(),  # Keras' fine labels, in label order
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    "imdb": ["negative", "positive"],
    "reuters": [str(i) for i in range(46)],
}
# Text sets and the length their id sequences are padded or cut to.
TEXT_LENGTHS = {"imdb": 256, "reuters": 200}
# Keras' load_data conventions, which the offline copies must reproduce exactly.
NUM_WORDS = 20_000  # ids are < NUM_WORDS
START_ID, OOV_ID, INDEX_FROM = 1, 2, 3
KERAS_SEED, REUTERS_TEST_SPLIT = 113, 0.2
KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
# What keras.datasets (Keras 3.15) keeps under its cache folder; present = loads offline.
_KERAS_CACHE = {
    "cifar10": ["cifar-10-batches-py-target_archive"],
    "cifar100": ["cifar-100-python-target_archive"],
    "mnist": ["mnist.npz"],
    "fashion_mnist": [
        f"fashion-mnist/{split}-{part}-idx{rank}-ubyte.gz"
        for split in ("train", "t10k")
        for part, rank in (("labels", 1), ("images", 3))
    ],
    "imdb": ["imdb.npz"],
    "reuters": ["reuters.npz"],
}
# Folder names cannot hold "/", so on disk fashion_mnist's first class is "T-shirt_top".
_FOLDER_NAMES = {k: [n.replace("/", "_") for n in v] for k, v in CLASS_NAMES.items()}


def local_source(name: str, data_dir: Path | None) -> Path | None:
    """The local copy of `name` (a folder, an archive or an `.npz`), without unpacking it."""
    roots = [p for p in (data_dir, settings.data_dir()) if p]
    for root in map(Path, roots):
        if name in TEXT_LENGTHS:
            if (root / f"{name}.npz").is_file():
                return root / f"{name}.npz"
            continue
        for candidate in (root, root / name, root / f"{name}-jpg"):
            if has_class_folders(candidate, _FOLDER_NAMES[name]):
                return candidate
        archives = sorted(root.glob(f"{name}-*.tar.*"))
        if archives:
            return archives[0]
    return None


def find_local_copy(name: str, data_dir: Path | None) -> Path | None:
    """A folder with `train/` and `test/` (an archive unpacked), or the `.npz`; None if none.

    Raises:
        UsageError: When an archive holds no `train/<class>/` and `test/` of `name`.
    """
    found = local_source(name, data_dir)
    if found is None or found.is_dir() or name in TEXT_LENGTHS:
        return found
    unpacked = unpack_archive(found)
    for candidate in (unpacked, *unpacked.iterdir()):
        if candidate.is_dir() and has_class_folders(candidate, _FOLDER_NAMES[name]):
            return candidate
    raise UsageError(
        f"archive {found} holds no train/<class>/ and test/ folders with {name}'s classes "
        f"({', '.join(_FOLDER_NAMES[name][:3])}, ...); repack it or remove it."
    )


def keras_cache_dir() -> Path:
    """Where `keras.datasets` keeps its files, by Keras' own rule but without importing it."""
    home = os.path.expanduser("~")
    base = os.environ.get("KERAS_HOME") or os.path.join(
        home if os.access(home, os.W_OK) else "/tmp", ".keras"
    )
    return Path(base) / "datasets"


def keras_cache_file(name: str) -> Path | None:
    """Keras' cached download of `name` when every file of it is there, else None."""
    paths = [keras_cache_dir() / rel for rel in _KERAS_CACHE[name]]
    if all(p.is_file() for p in paths):
        return paths[0] if len(paths) == 1 else paths[0].parent
    return None


def load_keras(name: str, *, data_dir: Path | None = None, seed: int | None = 0) -> Dataset:
    """Load a `keras.datasets` set from a local copy, Keras' cache, or a download.

    Images come as uint8 (N, H, W, C) pixels, kind "image"; imdb and reuters as int32
    word ids padded at the end, kind "text" (see the module docstring).

    Raises:
        UsageError: When there is no local copy and the download fails, saying both fixes.
    """
    from automl.data._split import split_dataset

    if data_dir is not None and not Path(data_dir).is_dir():
        raise UsageError(
            f"{{data_dir}} {data_dir} is not a folder; pass the folder that holds the {name} copy."
        )
    local = find_local_copy(name, data_dir)
    if local is None:
        x_train, y_train, x_test, y_test = _download(name, data_dir)
        source = f"keras.datasets.{name}"
    elif name in TEXT_LENGTHS:
        x_train, y_train, x_test, y_test = read_word_ids(name, local)
        source = str(local)
    else:
        x_train, y_train, x_test, y_test = load_split_folders(local, _FOLDER_NAMES[name])
        source = str(local)
    if name in TEXT_LENGTHS:
        kind = "text"
        x_train, x_test = _pad(x_train, TEXT_LENGTHS[name]), _pad(x_test, TEXT_LENGTHS[name])
    else:
        kind = "image"
        if x_train.ndim == 3:
            x_train, x_test = x_train[..., None], x_test[..., None]
    y_train = np.asarray(y_train).reshape(-1).astype("int64")
    y_test = np.asarray(y_test).reshape(-1).astype("int64")
    return split_dataset(
        name,
        kind,
        CLASS_NAMES[name],
        (x_train, y_train),
        (x_test, y_test),
        seed=seed,
        source=source,
    )


# What reading a file that is not Keras' .npz (truncated, tampered, other keys) raises.
_BAD_FILE = (
    OSError,
    EOFError,
    LookupError,
    TypeError,
    ValueError,
    zipfile.BadZipFile,
    pickle.PickleError,
)


def read_word_ids(name: str, path: Path) -> tuple[list[list[int]], Any, list[list[int]], Any]:
    """x_train, y_train, x_test, y_test of Keras' `imdb.npz`/`reuters.npz`, as its load_data
    gives them with `num_words=20000` (same shuffles, split, start/out-of-vocabulary ids).

    Raises:
        UsageError: When the file is not such a file.
    """
    try:
        arrays = _read_keras_npz(path)
        rng = np.random.RandomState(KERAS_SEED)
        if name == "imdb":  # Keras shuffles train, then test, with one generator
            parts = [_shuffled(rng, arrays[f"x_{s}"], arrays[f"y_{s}"]) for s in ("train", "test")]
        else:
            xs, ys = _shuffled(rng, arrays["x"], arrays["y"])
            cut = int(len(xs) * (1 - REUTERS_TEST_SPLIT))
            parts = [(xs[:cut], ys[:cut]), (xs[cut:], ys[cut:])]
        (x_train, y_train), (x_test, y_test) = [([_ids(seq) for seq in x], y) for x, y in parts]
    except _BAD_FILE as exc:
        raise UsageError(_not_keras_file(path, name, exc)) from exc
    return x_train, y_train, x_test, y_test


def _not_keras_file(path: Path, name: str, exc: Exception) -> str:
    reason = str(exc).splitlines()[0] if str(exc) else ""
    return (
        f"{path} is not Keras' {name}.npz ({type(exc).__name__}: {reason}); replace it with "
        f"{KERAS_URL}{name}.npz."
    )


def _shuffled(rng: np.random.RandomState, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
    order = np.arange(len(x))
    rng.shuffle(order)
    return x[order], y[order]


def _ids(words: Any) -> list[int]:
    """Keras' ids: the start id, then word ranks moved up by 3; rare words become OOV."""
    shifted = (int(w) + INDEX_FROM for w in words)
    return [START_ID, *(w if w < NUM_WORDS else OOV_ID for w in shifted)]


def _pad(sequences: Any, length: int) -> np.ndarray:
    import keras

    # Right-padding: cuDNN's fused RNN kernels need the padding at the end.
    return keras.utils.pad_sequences(
        list(sequences), maxlen=length, dtype="int32", padding="post", truncating="post"
    )


# Keras stores ragged id lists as numpy object arrays, which only a pickle can hold. Instead
# of np.load(allow_pickle=True), which would run whatever a tampered file asks for, rebuild
# them with an unpickler that knows numpy's array globals and nothing else (as Keras does).
_ARRAY_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }
)


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ARRAY_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_keras_npz(path: Path) -> dict[str, np.ndarray]:
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            stream = io.BytesIO(archive.read(member))
            key = member.removesuffix(".npy")
            try:
                arrays[key] = np.lib.format.read_array(stream, allow_pickle=False)
            except ValueError:  # an object array: skip the .npy header, then unpickle
                stream.seek(0)
                major, _ = np.lib.format.read_magic(stream)
                if major == 1:
                    np.lib.format.read_array_header_1_0(stream)
                else:  # versions 2 and 3 share the header layout
                    np.lib.format.read_array_header_2_0(stream)
                arrays[key] = _ArrayUnpickler(stream).load()
    return arrays


def _download(name: str, data_dir: Path | None) -> tuple[Any, ...]:
    import keras

    options = {"num_words": NUM_WORDS} if name in TEXT_LENGTHS else {}
    try:
        loader = getattr(keras.datasets, name).load_data
        (x_train, y_train), (x_test, y_test) = loader(**options)
    except Exception as exc:  # noqa: BLE001 - any network/file failure means "not available"
        where = str(data_dir or settings.data_dir() or "(not set)")
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if name in TEXT_LENGTHS:
            copy = f"{name}.npz (Keras' file, from {KERAS_URL}{name}.npz)"
        else:
            copy = f"{name}/train/<class>/*.jpg and test/, or {name}-jpg.tar.xz"
        raise UsageError(
            f"{name} is not available: no local copy in {{data_dir}}/AUTOML_DATA_DIR ({where}) "
            f"or Keras' cache ({keras_cache_dir()}) and the download failed ({reason}); fix: "
            f"pass {{data_dir}} DIR (or set AUTOML_DATA_DIR) to a folder with {copy}, or allow "
            f"keras.datasets to download it."
        ) from exc
    return x_train, y_train, x_test, y_test
