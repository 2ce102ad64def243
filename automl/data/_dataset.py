"""The `Dataset` container handed from the data layer to the engine."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from automl.data._encoding import Encoded, Encoder

if TYPE_CHECKING:
    from automl.spaces import HyperParameters


@dataclasses.dataclass
class Dataset:
    """A split, in-memory dataset with what a space needs to know about it.

    Attributes:
        name: Dataset name.
        kind: The raw data: "image" (uint8 pixels, HxWxC), "vector" (float features),
            "sequence" (float timesteps x features), "text" (int token ids, or strings
            with an encoder) or "table" (a pandas DataFrame of columns).
        task: "classification" or "regression".
        class_names: Label names, index = integer label; [] for regression.
        x_train, y_train: Data the models are fitted on (raw; see `encoder`).
        x_val, y_val: Stratified hold-out from the training part, used for choosing.
        x_test, y_test: Scored once, for the best model only.
        source: Where the data came from (shown to the user and logged).
        encoder: Turns raw tables or strings into model-ready arrays, and builds the
            exported model that takes them raw; None when `x` is model-ready.
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
    encoder: Encoder | None = None

    def encode(self, hp: HyperParameters | None = None) -> Encoded:
        """The train and validation arrays a trial fits on (see `Encoder.encode`)."""
        if self.encoder is None:
            return Encoded(self.x_train, self.x_val, self.kind)
        return self.encoder.encode(self.x_train, self.x_val, hp)

    def raw_sample(self, n: int = 2) -> Any:
        """The first `n` test rows (else validation rows), as `model.predict` takes them."""
        from automl.data._encoding import model_input

        part = (self.x_test if len(self.x_test) else self.x_val)[:n]
        decode = getattr(self.encoder, "decode", None)  # file paths of a streamed folder
        return decode(part) if decode else model_input(part)

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
