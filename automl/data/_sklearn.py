"""scikit-learn's bundled datasets (no download needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from automl.data._dataset import Dataset
from automl.data._split import hold_out_test, split_dataset


def load_sklearn(name: str, *, data_dir: Path | None = None, seed: int | None = 0) -> Dataset:
    """Load `digits`, `iris`, `wine`, `breast_cancer` or `diabetes` as float32 vectors.

    Args:
        name: The scikit-learn dataset name.
        data_dir: Unused; these sets ship with scikit-learn.
        seed: Seed of the validation split.
    """
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    x = np.asarray(bunch.data, dtype="float32")
    source = f"sklearn.datasets.load_{name}"
    if name == "diabetes":  # the one regression set
        y_float = np.asarray(bunch.target, dtype="float32")
        x_rest, y_rest, x_test, y_test = hold_out_test(x, y_float, stratify=False)
        return split_dataset(
            name, "vector", [], (x_rest, y_rest), (x_test, y_test), seed=seed, source=source
        )
    y = np.asarray(bunch.target, dtype="int64")
    names = [str(n) for n in getattr(bunch, "target_names", np.unique(y))]
    x_rest, y_rest, x_test, y_test = hold_out_test(x, y)
    return split_dataset(
        name,
        "vector",
        names,
        (x_rest, y_rest),
        (x_test, y_test),
        seed=seed,
        source=source,
    )
