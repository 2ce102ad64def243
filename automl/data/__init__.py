"""Datasets: the built-in table, `load_data` / `load_dataset`, and the `Dataset` container.

The table (`DATASETS`) imports nothing heavy, so `automl datasets` and argument checks
stay fast. Loading lives in private modules, one per input kind: `_sklearn` (scikit-
learn's bundled sets), `_keras` (`keras.datasets`, with local copies for offline
machines; `_check` says where each would come from), `_images` (image folders),
`_table` (CSV/TSV/Parquet), `_text` (text tables), `_npz` (saved arrays) and `_arrays`
(in-memory arrays). Targets and tasks are `_targets`; splitting is `_split`; raw tables
and texts become model-ready arrays through the encoders of `_encoding`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from automl.data._arrays import from_arrays
from automl.data._dataset import Dataset

TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".parquet", ".pq")
ARRAY_SUFFIXES = (".npz",)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """One row of the built-in dataset table."""

    name: str
    description: str
    source: str
    default_space: str
    default_epochs: int


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in [
        DatasetInfo("cifar10", "32x32 colour images, 10 classes (50k/10k)", "keras", "auto", 6),
        DatasetInfo("cifar100", "32x32 colour images, 100 classes (50k/10k)", "keras", "auto", 6),
        DatasetInfo("mnist", "28x28 handwritten digits, 10 classes (60k/10k)", "keras", "auto", 6),
        DatasetInfo(
            "fashion_mnist", "28x28 clothing images, 10 classes (60k/10k)", "keras", "auto", 10
        ),
        DatasetInfo(
            "imdb", "movie reviews as word ids, positive/negative (25k/25k)", "keras", "auto", 6
        ),
        DatasetInfo("reuters", "newswires as word ids, 46 topics (8982/2246)", "keras", "auto", 10),
        DatasetInfo(
            "digits", "8x8 handwritten digits as 64 features, 10 classes", "sklearn", "auto", 40
        ),
        DatasetInfo("iris", "4 flower measurements, 3 classes", "sklearn", "auto", 60),
        DatasetInfo("wine", "13 chemical features, 3 classes", "sklearn", "auto", 60),
        DatasetInfo("breast_cancer", "30 tumour features, 2 classes", "sklearn", "auto", 40),
        DatasetInfo(
            "diabetes",
            "10 patient features, disease progression (regression)",
            "sklearn",
            "auto",
            60,
        ),
    ]
}


def load_dataset(name: str, *, data_dir: Path | None = None, seed: int | None = 0) -> Dataset:
    """Load a built-in dataset and split it into train, validation and test.

    The validation split is carved, stratified, from the training part; the dataset's own
    test part (or a fixed 20 % hold-out for scikit-learn sets) is only used to score the
    final best model.

    Args:
        name: A key of `DATASETS`.
        data_dir: Folder with local copies (else `AUTOML_DATA_DIR`, else download).
        seed: Seed of the validation split.

    Returns:
        The split `Dataset`.

    Raises:
        UsageError: If the name is unknown or the data cannot be had.
    """
    from automl._errors import UsageError

    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}.")
    loader: Callable[..., Dataset]
    if DATASETS[name].source == "sklearn":
        from automl.data._sklearn import load_sklearn as loader
    else:
        from automl.data._keras import load_keras as loader
    return loader(name, data_dir=data_dir, seed=seed)


def load_data(
    dataset: str,
    *,
    data_dir: Path | None = None,
    seed: int | None = 0,
    target: str | None = None,
    text_column: str | None = None,
    task: str | None = None,
) -> Dataset:
    """Load a built-in by name, or the user's data from a path.

    Args:
        dataset: A key of `DATASETS`; an image folder (one subfolder per class,
            optionally under `train/` and `test/`); a table (.csv, .tsv, .parquet) with
            `target`, of texts when `text_column` is given; or an `.npz` file holding
            `x_train`, `y_train` and optionally `x_test`, `y_test`.
        data_dir: Folder with local copies of the built-ins.
        seed: Seed of the validation split.
        target: The column to predict, for tables.
        text_column: The column of texts, for text tables.
        task: "binary", "multiclass", "classification" or "regression"; None detects it.

    Raises:
        UsageError: On missing files or columns, unreadable data, or a task the data
            cannot have.
    """
    from automl.data._targets import check_task

    if dataset in DATASETS:
        return check_task(load_dataset(dataset, data_dir=data_dir, seed=seed), task)
    path = Path(dataset)
    if path.is_dir():
        from automl.data._images import load_image_folder

        return check_task(load_image_folder(path, seed=seed), task)
    if path.suffix.lower() == ".npz":
        from automl.data._npz import load_npz

        return load_npz(path, task=task, seed=seed)
    if text_column:
        from automl.data._text import load_text_table

        return load_text_table(
            path, target=target or "", text_column=text_column, task=task, seed=seed
        )
    from automl.data._table import load_table

    return load_table(path, target=target or "", task=task, seed=seed)


def table_input(frame: Any, model: Any = None) -> dict[str, Any]:
    """Raw table rows (a pandas DataFrame) as the dict of columns a table model predicts on.

    Strings become object arrays with "" for missing values (Keras cannot feed None or
    NaN to a string input); numbers stay numbers, NaN for missing. With `model`, only its
    input columns, in its dtypes.
    """
    from automl.data._table import table_input as convert

    return convert(frame, model)


__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetInfo",
    "from_arrays",
    "load_data",
    "load_dataset",
    "table_input",
]
