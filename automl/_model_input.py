"""The input structure of a Keras model, Sequential ones included."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras


def model_input(model: keras.Model) -> Any:
    """`model.input`: a tensor, a list of them, or a dict keyed by column.

    A `keras.Sequential` started with `keras.Input` (keras-tuner's tutorial builds one)
    is never called on its input, so `model.input` raises; its `inputs` hold the one.
    """
    import keras

    if isinstance(model, keras.Sequential):
        return model.inputs[0]
    return model.input
