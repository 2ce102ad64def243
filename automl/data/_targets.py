"""Targets: the task they imply (or the one asked for) and their encoding.

Shared by every loader, so arrays, tables, texts and `.npz` files agree on what
"binary", "multiclass" and "regression" mean.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from automl._errors import UsageError

if TYPE_CHECKING:
    from automl.data._dataset import Dataset

# What users may pass as --task; "classification" lets the class count decide.
TASK_CHOICES = ("binary", "multiclass", "classification", "regression")


def encode_target(
    y: Any, task: str | None = None, *, what: str = "the target"
) -> tuple[np.ndarray, list[str], str]:
    """Check `y` and encode it for the task.

    The task is detected with scikit-learn's `type_of_target` (non-integer numbers mean
    regression; labels of any type, or integers, mean classification) unless given.

    Args:
        y: One label or value per row.
        task: One of `TASK_CHOICES`, or None to detect it.
        what: How errors name the target (e.g. "column 'label'").

    Returns:
        (y, class_names, task): int64 class indices and the sorted label names for
        classification, float32 values and [] for regression; task is
        "classification" or "regression".

    Raises:
        UsageError: On missing values, a single class, a wrong class count for
            "binary", or non-numeric values for "regression".
    """
    from sklearn.utils.multiclass import type_of_target

    if task is not None and task not in TASK_CHOICES:
        raise UsageError(f"{{task}} must be one of {', '.join(TASK_CHOICES)}, but got {task!r}.")
    y = np.asarray(y)
    if y.ndim != 1:
        raise UsageError(f"{what} must be one label or value per row, but got shape {y.shape}.")
    missing = _missing(y)
    if missing.any():
        first = int(np.flatnonzero(missing)[0])
        raise UsageError(
            f"{what} has {int(missing.sum())} missing values (first at row {first}); drop or "
            f"fill those rows."
        )
    if task is None:
        task = "regression" if type_of_target(y) == "continuous" else "classification"
    if task == "regression":
        try:
            return y.astype("float32"), [], "regression"
        except (TypeError, ValueError):
            raise UsageError(
                f"{what} is not numeric, so it cannot be a regression target; pass {{task}} "
                f"multiclass (or binary), or pick a numeric target."
            ) from None
    labels, index = np.unique(y, return_inverse=True)
    if len(labels) < 2:
        raise UsageError(
            f"{what} has a single class ({str(labels[0])!r} in every row); a classifier needs at "
            f"least 2 classes."
        )
    if task == "binary" and len(labels) != 2:
        raise UsageError(
            f"{{task}} binary needs exactly 2 classes, but {what} has {len(labels)}; pass "
            f"{{task}} multiclass."
        )
    return index.astype("int64"), [str(v) for v in labels], "classification"


def _missing(y: np.ndarray) -> np.ndarray:
    """Rows whose target is NaN, None or an empty string."""
    if y.dtype.kind == "f":
        return np.isnan(y)
    if y.dtype.kind == "O":
        return np.array([v is None or v == "" or (isinstance(v, float) and v != v) for v in y])
    if y.dtype.kind == "U":
        return y == ""
    return np.zeros(len(y), dtype=bool)


def check_task(data: Dataset, task: str | None) -> Dataset:
    """Refuse a `--task` that a dataset with a known task cannot have; returns `data`."""
    if task is None:
        return data
    wanted = "regression" if task == "regression" else "classification"
    if wanted != data.task:
        raise UsageError(
            f"{data.name} is a {data.task} dataset; {{task}} {task} does not apply to it."
        )
    if task == "binary" and data.num_classes != 2:
        raise UsageError(
            f"{{task}} binary needs exactly 2 classes, but {data.name} has "
            f"{data.num_classes}; pass {{task}} multiclass."
        )
    return data
