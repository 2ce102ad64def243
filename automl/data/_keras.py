"""`keras.datasets` image sets, preferring a local copy so offline machines work.

Local copies are looked up in `data_dir`, then `AUTOML_DATA_DIR`, in these layouts:
`DIR/train|test/<class>/` (the folder itself), `DIR/<name>/train|test/<class>/`, or an
archive `DIR/<name>-jpg.tar.xz` holding `train/` and `test/`. Only if none is found does
Keras download the set.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from automl._errors import UsageError
from automl.data._dataset import Dataset
from automl.data._images import has_class_folders, load_split_folders, unpack_archive
from automl.data._split import split_dataset

logger = logging.getLogger("automl")

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
}
# Folder names cannot hold "/", so on disk fashion_mnist's first class is "T-shirt_top".
_FOLDER_NAMES = {k: [n.replace("/", "_") for n in v] for k, v in CLASS_NAMES.items()}


def find_local_copy(name: str, data_dir: Path | None) -> Path | None:
    """Return a folder with `train/` and `test/` for `name`, or None if there is no copy."""
    roots = [p for p in (data_dir, os.environ.get("AUTOML_DATA_DIR")) if p]
    for root in map(Path, roots):
        for candidate in (root, root / name, root / f"{name}-jpg"):
            if has_class_folders(candidate, _FOLDER_NAMES[name]):
                return candidate
        for archive in sorted(root.glob(f"{name}-*.tar.*")):
            unpacked = unpack_archive(archive)
            for candidate in (unpacked, *unpacked.iterdir()):
                if candidate.is_dir() and has_class_folders(candidate, _FOLDER_NAMES[name]):
                    return candidate
    return None


def load_keras(name: str, *, data_dir: Path | None = None, seed: int | None = 0) -> Dataset:
    """Load an image set from a local copy or `keras.datasets`.

    Raises:
        UsageError: When there is no local copy and the download fails, saying both fixes.
    """
    if data_dir is not None and not Path(data_dir).is_dir():
        raise UsageError(
            f"--data-dir {data_dir} is not a folder; pass the folder that holds the {name} copy."
        )
    local = find_local_copy(name, data_dir)
    if local is not None:
        x_train, y_train, x_test, y_test = load_split_folders(local, _FOLDER_NAMES[name])
        source = str(local)
    else:
        x_train, y_train, x_test, y_test = _download(name, data_dir)
        source = f"keras.datasets.{name}"
    if x_train.ndim == 3:
        x_train, x_test = x_train[..., None], x_test[..., None]
    y_train, y_test = y_train.reshape(-1).astype("int64"), y_test.reshape(-1).astype("int64")
    return split_dataset(
        name,
        "image",
        CLASS_NAMES[name],
        (x_train, y_train),
        (x_test, y_test),
        seed=seed,
        source=source,
    )


def _download(name: str, data_dir: Path | None) -> tuple[np.ndarray, ...]:
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    except Exception as exc:  # noqa: BLE001 - any network/file failure means "not available"
        where = str(data_dir) if data_dir else os.environ.get("AUTOML_DATA_DIR", "(not set)")
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(
            f"{name} is not available: no local copy in --data-dir/AUTOML_DATA_DIR ({where}) "
            f"and the download failed ({reason}); fix: pass --data-dir DIR (or set "
            f"AUTOML_DATA_DIR) to a folder with {name}/train/<class>/*.jpg and test/, or "
            f"{name}-jpg.tar.xz, or allow keras.datasets to download it."
        ) from exc
    return x_train, y_train, x_test, y_test
