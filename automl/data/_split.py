"""Stratified splits with scikit-learn; the only place data is divided."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from automl._errors import UsageError
from automl.data._dataset import Dataset
from automl.data._encoding import Encoder

# A word, for `TextVectorization`'s default standardization: it keeps letters and digits.
_WORD = re.compile(r"\w")


def carve_validation(
    x: np.ndarray, y: np.ndarray, *, seed: int | None, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split a training part into train and validation, stratified by label.

    Uses 10 % for validation on large sets (over 10,000 rows) and 20 % otherwise.
    Regression targets (`stratify=False`) are split at random.

    Returns:
        x_train, y_train, x_val, y_val.
    """
    fraction = 0.1 if len(x) > 10_000 else 0.2
    return _split(x, y, fraction, stratify=stratify, seed=seed if seed is not None else 0)


def hold_out_test(
    x: np.ndarray, y: np.ndarray, *, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A fixed 20 % stratified test split for data that comes without one.

    The seed is constant so every study on the same data scores on the same rows.

    Returns:
        x_train, y_train, x_test, y_test.
    """
    return _split(x, y, 0.2, stratify=stratify, seed=0)


def _split(
    x: Any, y: np.ndarray, fraction: float, *, stratify: bool, seed: int
) -> tuple[Any, np.ndarray, Any, np.ndarray]:
    """scikit-learn's split, with its too-few-rows errors as one-line `UsageError`s."""
    try:
        x_a, x_b, y_a, y_b = train_test_split(
            x, y, test_size=fraction, stratify=y if stratify else None, random_state=seed
        )
    except ValueError as exc:
        classes = f" of {len(np.unique(y))} classes" if stratify else ""
        raise UsageError(
            f"too little data to split {len(x)} rows{classes} into train, validation and "
            f"test ({exc}); give more rows per class."
        ) from None
    return x_a, y_a, x_b, y_b


def split_dataset(
    name: str,
    kind: str,
    class_names: list[str],
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    *,
    seed: int | None,
    source: str,
    encoder: Encoder | None = None,
) -> Dataset:
    """A `Dataset` whose validation split is carved from `train`.

    With `class_names` it is a classification set and the split is stratified; an empty
    list means regression, split at random. `x` may be an array or a DataFrame.
    """
    task = "classification" if class_names else "regression"
    x_train, y_train, x_val, y_val = carve_validation(
        *train, seed=seed, stratify=task == "classification"
    )
    if kind == "text":
        splits = {"training": x_train, "validation": x_val, "test": test[0]}
        for part, texts in splits.items():
            _require_words(part, texts, source or name)
    return Dataset(
        name=name,
        kind=kind,
        task=task,
        class_names=class_names,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=test[0],
        y_test=test[1],
        source=source,
        encoder=encoder,
    )


def _require_words(part: str, texts: Any, source: str) -> None:
    """Refuse a text split in which no text holds a word: a model would train (or be
    judged) on padding alone, and could only learn the class balance.

    Texts are raw strings (a word: any letter or digit, what `TextVectorization` keeps)
    or token ids (0 is padding).

    Raises:
        UsageError: Naming the split, its size and what to check.
    """
    if not len(texts):
        return
    texts = np.asarray(texts)
    if texts.dtype == object:
        wordless = all(_WORD.search(str(text)) is None for text in texts)
    else:
        wordless = not np.any(texts)
    if wordless:
        raise UsageError(
            f"every text of the {part} split of {source} ({len(texts)} rows) is empty or "
            "holds no word; nothing can be learned or judged from it. Check the text "
            "column, or give more rows with text."
        )


def hold_out(
    x: Any, y: np.ndarray, *, test_split: bool = True, stratify: bool = True
) -> tuple[tuple[Any, np.ndarray], tuple[Any, np.ndarray]]:
    """(train part, test part) of data without its own test split.

    The test part is `hold_out_test`'s fixed 20 %, or empty without `test_split`.

    Raises:
        UsageError: When there is too little data to split (10 rows, 3 per class).
    """
    if len(x) < 10 or (stratify and np.unique(y, return_counts=True)[1].min() < 3):
        raise UsageError(
            f"too little data to split ({len(x)} rows); give at least 10 rows and 3 per class."
        )
    if not test_split:
        return (x, y), (x[:0], y[:0])
    x_rest, y_rest, x_test, y_test = hold_out_test(x, y, stratify=stratify)
    return (x_rest, y_rest), (x_test, y_test)
