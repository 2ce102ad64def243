"""Image folders (`<class>/*.jpg`, or `train/<class>/` + `test/<class>/`) decoded once and cached.

Decoding 60,000 JPEGs takes about 16 s on one core, so the decoded arrays are kept as
`.npz` in the cache folder (`AUTOML_CACHE_DIR`, else `~/.cache/automl`) and reused by
every later study and test. Images of mixed sizes are resized to the most common size at
decode time; `ResizeEncoder` then puts the same resizing in front of the exported model.
Which built-in set lives where is `_keras`'s business, not this module's.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import logging
import os
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from automl import settings
from automl._errors import UsageError
from automl.data._dataset import Dataset
from automl.data._encoding import Encoded

if TYPE_CHECKING:
    import keras

    from automl.spaces import HyperParameters

logger = logging.getLogger("automl")

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# Stratified test (20 %) and validation (20 % of the rest) splits need every class in
# both parts of both splits: 8 images per class is the smallest count that always works.
MIN_PER_CLASS = 8


def cache_dir() -> Path:
    """The folder for decoded arrays and unpacked archives."""
    path = settings.cache_dir()
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


def has_class_folders(root: Path, class_names: list[str]) -> bool:
    """True when `root/train` holds exactly the expected class folders and `root/test` exists."""
    train = root / "train"
    if not (train.is_dir() and (root / "test").is_dir()):
        return False
    return sorted(p.name for p in train.iterdir() if p.is_dir()) == sorted(class_names)


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
    folders = {"train": root / "train", "test": root / "test"}
    arrays = _decode_cached(root, folders, class_names, _list_files(folders, class_names))
    return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]


def load_image_folder(path: Path, *, seed: int | None = 0) -> Dataset:
    """Load a folder of images, one subfolder per class, as an image `Dataset`.

    Two layouts: `path/<class>/*.jpg` (a fixed, stratified 20 % becomes the test split),
    or `path/train/<class>/` with an optional `path/test/<class>/` (whose classes must be
    among train's). Labels are the sorted class folder names. Unreadable files are skipped
    with one warning; images of mixed sizes are resized to the most common size and the
    dataset gets a `ResizeEncoder`, so the exported model takes images of any size.

    Args:
        path: The folder.
        seed: Seed of the validation split.

    Returns:
        The split `Dataset` with uint8 pixels (N, H, W, C), named after the folder.

    Raises:
        UsageError: When the folder is missing, has fewer than two classes with images,
            test classes that train lacks, no readable image, or too few per class.
    """
    from automl.data._split import hold_out, split_dataset

    root = Path(path)
    layout = (
        f"expected {root}/<class>/*.jpg (or .png, ...) or {root}/train/<class>/ with an "
        f"optional {root}/test/<class>/"
    )
    if not root.is_dir():
        raise UsageError(f"image folder {root} is not a folder; {layout}.")
    split_layout = (root / "train").is_dir()
    train_dir = root / "train" if split_layout else root
    class_names = _class_folders(train_dir, layout)
    folders = {"train": train_dir}
    if split_layout and (root / "test").is_dir():
        extra = sorted(set(_subfolders(root / "test")) - set(class_names))
        if extra:
            raise UsageError(
                f"{root}/test has class folders that {train_dir} lacks ({', '.join(extra)}); "
                f"test classes must be among train's: {', '.join(class_names)}."
            )
        folders["test"] = root / "test"
    from automl.data._stream import memory_budget, scan

    files = _list_files(folders, class_names)
    encoder: Any = None
    if _decoded_bytes(files) > memory_budget():
        arrays, encoder = scan(root, files)
    else:
        arrays = _decode_cached(root, folders, class_names, files)
        if int(arrays["sizes"]) > 1:
            encoder = ResizeEncoder(*arrays["x_train"].shape[1:])
    x, y = arrays["x_train"], arrays["y_train"]
    counts = np.bincount(y, minlength=len(class_names))
    if counts.min() < MIN_PER_CLASS:
        name = class_names[int(counts.argmin())]
        raise UsageError(
            f"class {name!r} has {counts.min()} readable images in {train_dir}; each class "
            f"needs at least {MIN_PER_CLASS} (for the validation and test splits)."
        )
    if len(arrays.get("y_test", ())):
        train, test = (x, y), (arrays["x_test"], arrays["y_test"])
    else:
        train, test = hold_out(x, y)
    return split_dataset(
        root.resolve().name,
        "image",
        class_names,
        train,
        test,
        seed=seed,
        source=str(root),
        encoder=encoder,
    )


@dataclasses.dataclass(frozen=True)
class ResizeEncoder:
    """Pixels are trained on as they are; the exported model resizes any input first.

    Used for folders of mixed image sizes, which were resized to (height, width) when
    decoded: the exported model takes (None, None, channels) and resizes the same way.
    """

    height: int
    width: int
    channels: int

    def encode(self, x_train: Any, x_val: Any, hp: HyperParameters | None = None) -> Encoded:
        """The splits unchanged, with `wrap` set to this encoder's."""
        return Encoded(x_train, x_val, kind="image", wrap=self.wrap)

    def wrap(self, model: keras.Model) -> keras.Model:
        """`model` behind a `Resizing` layer that takes images of any size."""
        import keras

        inputs = keras.Input(shape=(None, None, self.channels), name="pixels")
        # antialias=True matches Pillow's bilinear filter, used on the training images.
        resized = keras.layers.Resizing(self.height, self.width, antialias=True)(inputs)
        return keras.Model(inputs, model(resized), name=f"resized_{model.name}")


def _subfolders(folder: Path) -> list[str]:
    """Sorted names of the visible subfolders (`.ipynb_checkpoints` and the like skipped)."""
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in _IMAGE_SUFFIXES for p in folder.iterdir())


def _class_folders(folder: Path, layout: str) -> list[str]:
    """The class folders of `folder` that hold images; raises unless there are two or more."""
    names = _subfolders(folder)
    if not names:
        files = sum(1 for p in folder.iterdir() if p.is_file())
        raise UsageError(f"found no class folders in {folder} (only {files} files); {layout}.")
    with_images = [n for n in names if _has_images(folder / n)]
    if len(with_images) < 2:
        found = ", ".join(with_images) or "none"
        raise UsageError(
            f"found {len(with_images)} class folder with images in {folder} ({found}); a "
            f"classifier needs at least 2; {layout}."
        )
    if len(with_images) < len(names):
        empty = sorted(set(names) - set(with_images))
        logger.warning("ignoring class folders without images in %s: %s", folder, ", ".join(empty))
    return with_images


def _list_files(
    folders: dict[str, Path], class_names: list[str]
) -> dict[str, list[tuple[Path, int]]]:
    """(path, label) of every image file, per split."""
    return {
        split: [
            (p, label)
            for label, name in enumerate(class_names)
            if (folder / name).is_dir()
            for p in _image_files(folder / name)
        ]
        for split, folder in folders.items()
    }


def _decoded_bytes(files: dict[str, list[tuple[Path, int]]]) -> int:
    """Estimated bytes of all pixels decoded: the file count times the first image's size."""
    count = sum(len(split_files) for split_files in files.values())
    for split_files in files.values():
        for path, _ in split_files[:20]:
            image = _decode_one(path)
            if image is not None:
                return count * image.size * (3 if image.ndim == 2 else 1)
    return 0


def _decode_cached(
    root: Path,
    folders: dict[str, Path],
    class_names: list[str],
    files: dict[str, list[tuple[Path, int]]],
) -> dict[str, np.ndarray]:
    """Decoded `x_<split>`/`y_<split>` for each folder, plus `sizes`, through the cache.

    The cache key covers the folder's fingerprint and the label order, so a folder read as
    a built-in set (Keras' class order) and as a user folder (sorted) never mix.
    """
    key = "|".join([_fingerprint(root), *folders, *class_names])
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    cached = cache_dir() / f"{root.resolve().name}-{digest}.npz"
    if cached.exists():
        with np.load(cached) as stored:
            arrays = {k: stored[k] for k in stored.files}
    else:
        arrays = _decode(root, files)
        partial = cached.with_suffix(".tmp.npz")
        np.savez(partial, **arrays)
        partial.replace(cached)  # atomic: a killed run never leaves half a cache file
    # Said on every load, not only the first: the cache must not hide what was left out.
    if int(arrays["skipped"]):
        logger.warning(
            "skipped %d unreadable image files in %s (first: %s)",
            int(arrays["skipped"]),
            root,
            str(arrays["first_skipped"]),
        )
    if int(arrays["sizes"]) > 1:
        logger.warning(
            "images in %s have %d different sizes; all were resized to %dx%d (the most common)",
            root,
            int(arrays["sizes"]),
            *arrays["x_train"].shape[1:3],
        )
    return arrays


def _decode(root: Path, files: dict[str, list[tuple[Path, int]]]) -> dict[str, np.ndarray]:
    """Decode every split together, so all share one size and one channel count."""
    paths = [p for split_files in files.values() for p, _ in split_files]
    logger.info("decoding %d images from %s (cached afterwards)", len(paths), root)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        images = list(pool.map(_decode_one, paths, chunksize=256))
    readable = [image for image in images if image is not None]
    if not readable:
        raise UsageError(
            f"none of the {len(paths)} image files in {root} could be read; check that they "
            f"are JPEG, PNG, BMP, GIF, WebP or TIFF images."
        )
    sizes = collections.Counter(image.shape[:2] for image in readable)
    height, width = sizes.most_common(1)[0][0]
    channels = 3 if any(image.ndim == 3 for image in readable) else 1  # mixed L/RGB -> RGB
    first_skipped = next((str(p) for p, im in zip(paths, images, strict=True) if im is None), "")
    arrays: dict[str, np.ndarray] = {
        "skipped": np.array(len(paths) - len(readable)),
        "first_skipped": np.array(first_skipped),
        "sizes": np.array(len(sizes)),
    }
    position = 0
    for split, split_files in files.items():
        decoded = images[position : position + len(split_files)]
        position += len(split_files)
        keep = [i for i, image in enumerate(decoded) if image is not None]
        x = np.zeros((len(keep), height, width, channels), dtype="uint8")
        for row, i in enumerate(keep):
            x[row] = _conform(decoded[i], height, width, channels)
        arrays[f"x_{split}"] = x
        arrays[f"y_{split}"] = np.array([split_files[i][1] for i in keep], dtype="int64")
    return arrays


def _decode_one(path: Path) -> np.ndarray | None:
    """(H, W) grayscale or (H, W, 3) RGB pixels; None for a file Pillow cannot read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB") if image.mode not in ("L", "RGB") else image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def _conform(image: np.ndarray, height: int, width: int, channels: int) -> np.ndarray:
    """One image at the common size and channel count, (H, W, C)."""
    from PIL import Image

    if image.shape[:2] != (height, width):
        resized = Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR)
        image = np.asarray(resized)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] != channels:
        image = np.repeat(image, channels, axis=-1)  # grayscale -> RGB, as Pillow converts
    return image


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
