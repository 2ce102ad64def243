"""Patch whitening: the first convolution's kernel from the training images' statistics.

The CIFAR-10 speed-runs (hlb-CIFAR10, airbench) start with a frozen 2x2 convolution whose
filters are the eigenvectors of the covariance of all 2x2 patches, each scaled by
1/sqrt(eigenvalue): it decorrelates neighbouring pixels and channels, so the layers after
it learn in fewer epochs. Each eigenvector comes twice, as `v` and `-v`, so that the GELU
after it keeps both signs. The bias centres the patches (-kernel . mean), so the layer's
outputs have zero mean and unit variance on the training images.

What lives here: the numpy fit (`fit_whitening`), its rule for too little data and the
sample of training images a `ModelSpec` carries for it (`image_sample`). The layer is a
plain, frozen `keras.layers.Conv2D` (`automl.spaces.blocks.patch_whitening`), so a model
that uses it loads without automl.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

# Fewer images than this give a noisy covariance for 3-channel patches (12 dimensions),
# because neighbouring patches of one image are strongly correlated.
MIN_IMAGES = 256
# Images used for the fit at most: the covariance settles long before this.
MAX_IMAGES = 5_000
_CHUNK = 500  # images per chunk: bounds the patch array to ~25 MB on 32x32x3 images
_SAMPLE_BYTES = 64 << 20  # a spec's image sample stays this small on large images


def image_sample(
    x_train: np.ndarray, y_train: np.ndarray, stream: Callable[..., Any] | None = None
) -> np.ndarray | None:
    """Up to `MAX_IMAGES` training images (64 MB at most) as uint8, drawn with seed 0 so
    every worker of a search gets the same ones.

    Args:
        x_train: The training images, or their file paths when `stream` decodes them.
        y_train: The training targets (a stream yields (x, y) batches).
        stream: `stream(x, y, batch_size, shuffle=False)` -> batches, for data decoded
            on the fly (`automl.data.Encoded.stream`); None when `x_train` holds pixels.
    """
    n = len(x_train)
    if n == 0:
        return None
    if stream is None:
        per_image = max(1, int(np.prod(x_train.shape[1:])))
    else:  # decode one image to learn its size
        per_image = max(
            1, np.asarray(stream(x_train[:1], y_train[:1], 1, shuffle=False)[0][0]).size
        )
    size = max(1, min(n, MAX_IMAGES, _SAMPLE_BYTES // per_image))
    rows = np.sort(np.random.default_rng(0).choice(n, size, replace=False))
    if stream is None:
        return np.asarray(x_train[rows]).astype(np.uint8)
    paths = np.asarray(x_train, dtype=object)[rows]
    batches = stream(paths, np.asarray(y_train)[rows], 500, shuffle=False)
    return np.concatenate([np.asarray(batches[i][0]) for i in range(len(batches))]).astype(np.uint8)


def whitening_filters(patch_size: int, channels: int) -> int:
    """Output channels of a patch-whitening layer: two per patch dimension (v and -v)."""
    return 2 * patch_size * patch_size * channels


def fit_whitening(
    images: np.ndarray, patch_size: int = 2, epsilon: float = 5e-4
) -> tuple[np.ndarray, np.ndarray] | None:
    """The `(k, k, C, 2 k k C)` kernel and the bias that whiten `images`' k x k patches.

    Args:
        images: `(N, H, W, C)` images, scaled as the layer will see them (e.g. [0, 1]).
        patch_size: k, the side of the patches.
        epsilon: Added to the eigenvalues, so near-constant directions are not blown up.

    Returns:
        (kernel, bias), or None when there are fewer than `MIN_IMAGES` images or they are
        smaller than one patch (too little data to estimate the statistics).
    """
    images = np.asarray(images)
    if images.ndim != 4 or len(images) < MIN_IMAGES or min(images.shape[1:3]) < patch_size:
        return None
    images = images[:MAX_IMAGES]
    dim = patch_size * patch_size * images.shape[-1]
    total, count = np.zeros((dim, dim)), 0
    mean = np.zeros(dim)
    for start in range(0, len(images), _CHUNK):
        chunk = images[start : start + _CHUNK].astype(np.float32)
        windows = np.lib.stride_tricks.sliding_window_view(chunk, (patch_size, patch_size), (1, 2))
        # (N, H', W', C, k, k) -> rows of (k, k, C), the order of a Keras conv kernel.
        patches = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, dim).astype(np.float64)
        total += patches.T @ patches
        mean += patches.sum(axis=0)
        count += len(patches)
    mean /= count
    covariance = total / count - np.outer(mean, mean)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    scaled = eigenvectors / np.sqrt(np.maximum(eigenvalues, 0.0) + epsilon)
    filters = np.concatenate([scaled, -scaled], axis=1)  # (dim, 2 dim)
    channels = images.shape[-1]
    kernel = filters.reshape(patch_size, patch_size, channels, 2 * dim).astype(np.float32)
    return kernel, (-mean @ filters).astype(np.float32)


def too_few_images_message(count: int) -> str:
    """The one warning of a patch-whitening fit that falls back to the initializer."""
    return (
        f"patch whitening needs at least {MIN_IMAGES} training images of at least 2x2 "
        f"pixels to estimate patch statistics, but got {count}; the first convolution keeps "
        "its default initializer and trains."
    )
