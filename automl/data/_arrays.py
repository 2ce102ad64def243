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
        task: "classification" or "regression"; None infers it from `y` with
            scikit-learn's `type_of_target` (non-integer floats mean regression).
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
    from sklearn.utils.multiclass import type_of_target

    from automl.data._split import split_dataset

    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise UsageError(f"x and y must have the same length, but got {len(x)} and {len(y)}.")
    if y.ndim != 1:
        raise UsageError(f"y must be one label or value per row, but got shape {y.shape}.")
    kind = kind or _KIND_BY_RANK.get(x.ndim)
    if kind not in ("vector", "sequence", "image", "text"):
        raise UsageError(
            f"cannot tell what x of shape {x.shape} holds; pass kind='vector', 'sequence', "
            f"'image' or 'text'."
        )
    task = task or ("regression" if type_of_target(y) == "continuous" else "classification")
    if task not in ("classification", "regression"):
        raise UsageError(f"task must be 'classification' or 'regression', but got {task!r}.")
    x = x.astype("int32" if kind == "text" else "float32")
    if task == "regression":
        y = y.astype("float32")
        test = _hold_out(x, y, test_split, stratify=False)
        return split_dataset(name, kind, [], test[0], test[1], seed=seed, source="arrays")
    labels, y_index = np.unique(y, return_inverse=True)
    if len(labels) < 2:
        raise UsageError(f"classification needs at least 2 classes, but y has {len(labels)}.")
    test = _hold_out(x, y_index.astype("int64"), test_split, stratify=True)
    return split_dataset(
        name, kind, [str(v) for v in labels], test[0], test[1], seed=seed, source="arrays"
    )


def _hold_out(
    x: np.ndarray, y: np.ndarray, test_split: bool, *, stratify: bool
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(train part, test part); an empty test part without `test_split`."""
    if len(x) < 10 or (stratify and np.bincount(y).min() < 3):
        raise UsageError(
            f"too little data to split ({len(x)} rows); give at least 10 rows and 3 per class."
        )
    if not test_split:
        return (x, y), (x[:0], y[:0])
    from automl.data._split import hold_out_test

    x_rest, y_rest, x_test, y_test = hold_out_test(x, y, stratify=stratify)
    return (x_rest, y_rest), (x_test, y_test)
