"""scikit-learn's bundled datasets (no download needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from automl.data._dataset import Dataset
from automl.data._split import carve_validation, hold_out_test


def load_sklearn(name: str, *, data_dir: Path | None = None, seed: int | None = 0) -> Dataset:
    """Load `digits`, `iris`, `wine` or `breast_cancer` as float32 feature vectors.

    Args:
        name: The scikit-learn dataset name.
        data_dir: Unused; these sets ship with scikit-learn.
        seed: Seed of the validation split.
    """
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    x = np.asarray(bunch.data, dtype="float32")
    y = np.asarray(bunch.target, dtype="int64")
    names = [str(n) for n in getattr(bunch, "target_names", np.unique(y))]
    x_rest, y_rest, x_test, y_test = hold_out_test(x, y)
    x_train, y_train, x_val, y_val = carve_validation(x_rest, y_rest, seed=seed)
    return Dataset(
        name=name,
        kind="vector",
        task="classification",
        class_names=names,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        source=f"sklearn.datasets.load_{name}",
    )
