"""The `Dataset` container handed from the data layer to the engine."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Dataset:
    """A split, in-memory dataset with what a space needs to know about it.

    Attributes:
        name: Dataset name.
        kind: "image" (uint8 pixels, HxWxC) or "vector" (float features).
        task: "classification" (the only task so far).
        class_names: Label names, index = integer label.
        x_train, y_train: Data the models are fitted on.
        x_val, y_val: Stratified hold-out from the training part, used for choosing.
        x_test, y_test: Scored once, for the best model only.
        source: Where the data came from (shown to the user and logged).
    """

    name: str
    kind: str
    task: str
    class_names: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str = ""

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one raw example."""
        return tuple(self.x_train.shape[1:])

    def describe(self) -> dict[str, str | int]:
        """A flat summary for logs and MLflow params."""
        return {
            "dataset": self.name,
            "dataset_kind": self.kind,
            "task": self.task,
            "num_classes": self.num_classes,
            "input_shape": "x".join(map(str, self.input_shape)),
            "n_train": len(self.x_train),
            "n_val": len(self.x_val),
            "n_test": len(self.x_test),
            "data_source": self.source,
        }
