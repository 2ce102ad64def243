"""Image folders (`train/<class>/*.jpg`, `test/<class>/*.jpg`) decoded once and cached.

Decoding 60,000 JPEGs takes about 16 s on one core, so the decoded arrays are kept as
`.npz` in the cache folder (`AUTOML_CACHE_DIR`, else `~/.cache/automl`) and reused by
every later study and test.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

logger = logging.getLogger("automl")

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}


def cache_dir() -> Path:
    """The folder for decoded arrays and unpacked archives."""
    root = os.environ.get("AUTOML_CACHE_DIR") or Path.home() / ".cache" / "automl"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def unpack_archive(archive: Path) -> Path:
    """Unpack a `.tar.xz`/`.tar.gz` once into the cache and return the folder."""
    target = cache_dir() / f"{archive.name.split('.')[0]}-{_fingerprint(archive)}"
    done = target / ".unpacked"
    if not done.exists():
        logger.info("unpacking %s into %s", archive, target)
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        done.touch()
    return target


def load_split_folders(
    root: Path, class_names: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read `root/train` and `root/test` image folders through the decode cache.

    Args:
        root: Folder holding `train/` and `test/`, one subfolder per class.
        class_names: Label order; folder names must be these.

    Returns:
        x_train, y_train, x_test, y_test with uint8 pixels of shape (N, H, W, C).
    """
    cached = cache_dir() / f"{root.name}-{_fingerprint(root)}.npz"
    if cached.exists():
        with np.load(cached) as arrays:
            return tuple(arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    x_train, y_train = _read_folder(root / "train", class_names)
    x_test, y_test = _read_folder(root / "test", class_names)
    partial = cached.with_suffix(".tmp.npz")
    np.savez(partial, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    partial.replace(cached)  # atomic: a killed run never leaves half a cache file
    return x_train, y_train, x_test, y_test


def has_class_folders(root: Path, class_names: list[str]) -> bool:
    """True when `root/train` holds exactly the expected class folders and `root/test` exists."""
    train = root / "train"
    if not (train.is_dir() and (root / "test").is_dir()):
        return False
    return sorted(p.name for p in train.iterdir() if p.is_dir()) == sorted(class_names)


def _read_folder(folder: Path, class_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    files: list[tuple[Path, int]] = []
    for label, name in enumerate(class_names):
        class_dir = folder / name
        files += [
            (p, label) for p in sorted(class_dir.iterdir()) if p.suffix.lower() in _IMAGE_SUFFIXES
        ]

    def decode(path: Path) -> np.ndarray | None:
        try:
            with Image.open(path) as image:
                return np.asarray(image.convert("RGB") if image.mode not in ("L", "RGB") else image)
        except OSError:
            return None

    logger.info("decoding %d images from %s (cached afterwards)", len(files), folder)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        images = list(pool.map(decode, (p for p, _ in files), chunksize=256))
    keep = [i for i, image in enumerate(images) if image is not None]
    if len(keep) < len(files):
        logger.warning("skipped %d unreadable image files in %s", len(files) - len(keep), folder)
    x = np.stack([images[i] for i in keep]).astype("uint8")
    if x.ndim == 3:
        x = x[..., None]
    y = np.array([files[i][1] for i in keep], dtype="int64")
    return x, y


def _fingerprint(path: Path) -> str:
    """A short key that changes when the source changes.

    For a folder it covers the modification times of the folder and of its two levels
    below (`train/`, `train/<class>/`, ...): adding or removing an image changes its
    class folder's time.
    """
    entries = [path]
    if path.is_dir():
        for split in sorted(p for p in path.iterdir() if p.is_dir()):
            entries += [split, *sorted(p for p in split.iterdir() if p.is_dir())]
    key = "|".join(f"{p.resolve()}:{p.stat().st_mtime_ns}:{p.stat().st_size}" for p in entries)
    return hashlib.sha1(key.encode()).hexdigest()[:10]
