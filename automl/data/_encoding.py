"""Raw data to model-ready arrays, and the same preprocessing put in front of the model.

Tables and texts are kept raw in a `Dataset` (a DataFrame of columns, an array of
strings). An `Encoder` turns them into the arrays a space trains on (float vectors,
token ids) once per study, or once per choice of its own search dimensions (vocabulary
size, sequence length), and `Encoded.wrap` puts the same Keras preprocessing layers in
front of the trained model, so the exported model takes raw rows or strings.

Training runs on the encoded arrays: preprocessing is paid once, not every epoch (the
Keras guide's "preprocess in the tf.data pipeline, export an end-to-end model" pattern).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import keras

    from automl.spaces import HyperParameters


@dataclasses.dataclass
class Encoded:
    """What one trial trains on.

    Attributes:
        x_train, x_val: Model-ready arrays (float32 vectors, int32 token ids, pixels).
        kind: What the space sees: "vector", "text", "image" or "sequence".
        vocab_size: For "text": token ids are < vocab_size (0 = padding).
        wrap: Builds the exported model: raw input -> the same preprocessing -> the
            trained model. None means the trained model already takes raw input.
        shape: The shape of one example, when `x_*` are not its values (file paths).
        stream: `stream(x, y, batch_size, shuffle)` -> a `keras.utils.PyDataset` of
            batches, for data decoded on the fly; None when `x_*` are the arrays.
        categories: For table vectors: the number of ids of each category-id column
            at the end of the vector (see `automl.data._table_encoder`); empty if none.
    """

    x_train: np.ndarray
    x_val: np.ndarray
    kind: str
    vocab_size: int | None = None
    wrap: Callable[[keras.Model], keras.Model] | None = None
    shape: tuple[int, ...] | None = None
    stream: Callable[..., Any] | None = None
    categories: tuple[int, ...] = ()

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one encoded example."""
        return self.shape or tuple(self.x_train.shape[1:])


class Encoder(Protocol):
    """Turns a dataset's raw splits into `Encoded` arrays (cached by the encoder)."""

    def encode(self, x_train: Any, x_val: Any, hp: HyperParameters | None) -> Encoded:
        """Encode the train and validation splits.

        Args:
            x_train, x_val: The raw splits, as the dataset holds them.
            hp: The trial's hyperparameters, for encoders with search dimensions
                (named `<kind>.<name>`, e.g. `text.vocab_size`); None asks for the
                default choices (used before the study, to describe the data).
        """
        ...


def model_input(x: Any, model: keras.Model | None = None) -> Any:
    """What `model.predict` takes for raw data `x`.

    A DataFrame becomes a dict of columns in the dtypes Keras accepts (strings as object
    arrays with "" for missing; see `automl.data._table.table_input`); with `model`,
    only its input columns.
    """
    if hasattr(x, "columns"):  # pandas.DataFrame, without importing pandas here
        from automl.data._table import table_input

        return table_input(x, model)
    return x
