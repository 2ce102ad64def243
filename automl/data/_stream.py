"""Image folders larger than memory: paths in the `Dataset`, pixels decoded per batch.

When a folder's decoded pixels would not fit the memory budget (`AUTOML_MEMORY_BUDGET`,
e.g. `2G`; default a quarter of physical memory), `load_image_folder` keeps file paths
instead of pixels. Each trial then fits on a `keras.utils.PyDataset` that decodes one
batch at a time in worker threads; the exported model still takes pixels.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from automl import settings
from automl._errors import UsageError
from automl.data._encoding import Encoded

if TYPE_CHECKING:
    from automl.spaces import HyperParameters

logger = logging.getLogger("automl")


def memory_budget() -> int:
    """Bytes of decoded pixels that may be held in memory: `AUTOML_MEMORY_BUDGET`, else a
    quarter of physical memory.

    Raises:
        UsageError: If `AUTOML_MEMORY_BUDGET` is not a size like 800M or 2G.
    """
    budget = settings.memory_budget()
    if budget is None:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    return budget


def scan(
    root: Path, files: dict[str, list[tuple[Path, int]]]
) -> tuple[dict[str, np.ndarray], StreamEncoder]:
    """Read only the image headers: paths and labels per split, and the common size.

    Returns:
        `x_<split>` (object arrays of paths), `y_<split>`, and the encoder that decodes
        them at the most common size.

    Raises:
        UsageError: When no file is a readable image.
    """
    from PIL import Image

    shapes: dict[Path, tuple[int, int, int]] = {}
    for split_files in files.values():
        for path, _ in split_files:
            try:
                with Image.open(path) as image:  # lazy: the header only
                    shapes[path] = (image.height, image.width, 1 if image.mode == "L" else 3)
            except (OSError, ValueError, SyntaxError):
                continue
    total = sum(len(split_files) for split_files in files.values())
    if not shapes:
        raise UsageError(
            f"none of the {total} image files in {root} could be read; check that they are "
            f"JPEG, PNG, BMP, GIF, WebP or TIFF images."
        )
    if len(shapes) < total:
        logger.warning("skipped %d unreadable image files in %s", total - len(shapes), root)
    sizes = collections.Counter(shape[:2] for shape in shapes.values())
    (height, width), _ = sizes.most_common(1)[0]
    channels = max(shape[2] for shape in shapes.values())
    if len(sizes) > 1:
        logger.warning(
            "images in %s have %d different sizes; each is resized to %dx%d (the most common)",
            root,
            len(sizes),
            height,
            width,
        )
    arrays: dict[str, np.ndarray] = {}
    for split, split_files in files.items():
        kept = [(str(p), label) for p, label in split_files if p in shapes]
        arrays[f"x_{split}"] = np.array([p for p, _ in kept], dtype=object)
        arrays[f"y_{split}"] = np.array([label for _, label in kept], dtype="int64")
    logger.info("streaming %d images from %s (too large to hold decoded)", len(shapes), root)
    return arrays, StreamEncoder(height, width, channels, resize=len(sizes) > 1)


@dataclasses.dataclass(frozen=True)
class StreamEncoder:
    """Decodes image files batch by batch at one size; see the module docstring."""

    height: int
    width: int
    channels: int
    resize: bool = False

    def encode(self, x_train: Any, x_val: Any, hp: HyperParameters | None = None) -> Encoded:
        """Paths as they are, with the pixel shape and a batch `stream` for the trainer."""
        from automl.data._images import ResizeEncoder

        wrap = ResizeEncoder(self.height, self.width, self.channels).wrap if self.resize else None
        return Encoded(
            x_train,
            x_val,
            kind="image",
            shape=(self.height, self.width, self.channels),
            stream=self.batches,
            wrap=wrap,
        )

    def batches(
        self, paths: Sequence[str], labels: Any, batch_size: int, shuffle: bool = False
    ) -> ImageBatches:
        """A PyDataset of (pixels, labels), or pixels alone when `labels` is None."""
        return ImageBatches(self, paths, labels, batch_size, shuffle)

    def decode(self, paths: Sequence[str]) -> np.ndarray:
        """uint8 pixels (n, height, width, channels); an unreadable file becomes black."""
        from automl.data._images import _conform, _decode_one

        out = np.zeros((len(paths), self.height, self.width, self.channels), dtype="uint8")
        for row, path in enumerate(paths):
            image = _decode_one(Path(path))
            if image is not None:
                out[row] = _conform(image, self.height, self.width, self.channels)
        return out


class ImageBatches(keras.utils.PyDataset):
    """Batches decoded on demand, in two worker threads; reshuffled every epoch."""

    def __init__(
        self,
        encoder: StreamEncoder,
        paths: Sequence[str],
        labels: Any,
        batch_size: int,
        shuffle: bool,
    ) -> None:
        super().__init__(workers=2, use_multiprocessing=False)
        self.encoder, self.paths, self.labels = encoder, np.asarray(paths, dtype=object), labels
        self.batch_size, self.shuffle = batch_size, shuffle
        self.order = np.arange(len(self.paths))
        self.rng = np.random.default_rng(0)
        self.on_epoch_end()

    def __len__(self) -> int:
        return max(1, -(-len(self.paths) // self.batch_size))

    def __getitem__(self, index: int) -> Any:
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        pixels = self.encoder.decode(self.paths[rows])
        return pixels if self.labels is None else (pixels, np.asarray(self.labels)[rows])

    def on_epoch_end(self) -> None:
        """Shuffle the order for the next epoch (training batches only)."""
        if self.shuffle:
            self.rng.shuffle(self.order)
