"""In-memory arrays as a `Dataset`: what the Python API and the estimators search on."""

from __future__ import annotations

from typing import Any

import numpy as np

from automl._errors import UsageError
from automl.data._dataset import Dataset

_KIND_BY_RANK = {2: "vector", 3: "sequence", 4: "image"}


def from_arrays(
    x: Any,
    y: Any,
    *,
    task: str | None = None,
    kind: str | None = None,
    name: str = "arrays",
    test_split: bool = True,
    seed: int | None = 0,
) -> Dataset:
    """Split `x`, `y` into train, validation and (optionally) test.

    Args:
        x: Features: (n, features) vectors, (n, steps, features) sequences, (n, H, W, C)
            images with 0-255 pixels, or (n, steps) int token ids with `kind="text"`.
        y: Targets: class labels of any type, or numbers for regression.
        task: "binary", "multiclass", "classification" or "regression"; None infers
            it from `y` with scikit-learn's `type_of_target` (non-integer floats mean
            regression).
        kind: "vector", "sequence", "image" or "text"; None infers it from `x`'s rank.
        name: What studies and summaries call the data.
        test_split: Hold out a fixed, stratified 20 % to score the final model once.
        seed: Seed of the validation split.

    Returns:
        The split `Dataset`; for classification, `class_names` holds the sorted labels
        and the targets are their indices.

    Raises:
        UsageError: On mismatched lengths, unknown kinds or tasks, or too little data.
    """
    from automl.data._split import hold_out, split_dataset
    from automl.data._targets import encode_target

    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise UsageError(f"x and y must have the same length, but got {len(x)} and {len(y)}.")
    kind = kind or _KIND_BY_RANK.get(x.ndim)
    if kind not in ("vector", "sequence", "image", "text"):
        raise UsageError(
            f"cannot tell what x of shape {x.shape} holds; pass kind='vector', 'sequence', "
            f"'image' or 'text'."
        )
    y, class_names, task = encode_target(y, task, what="y")
    x = x.astype("int32" if kind == "text" else "float32")
    classify = task == "classification"
    train, test = hold_out(x, y, test_split=test_split, stratify=classify)
    return split_dataset(name, kind, class_names, train, test, seed=seed, source="arrays")
