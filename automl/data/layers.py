"""Custom Keras layers that exported models need at load time.

Registered under the "automl" package, so `keras.models.load_model` (safe mode included)
rebuilds them once this module is imported. Only layers Keras lacks live here; the table
encoder otherwise uses Keras' own `Normalization`, `StringLookup` and `IntegerLookup`.
"""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="automl")
class FillMissing(keras.layers.Layer):
    """Replaces NaN with per-column fill values and appends missing-value indicators.

    Input: (batch, k) floats. Output: (batch, k + sum(indicate)): the k filled columns,
    then one 0/1 column (1 = was NaN) for every column whose `indicate` flag is set.

    Args:
        fill_values: One value per column (the training mean), used where input is NaN.
        indicate: One flag per column: append its missing-value indicator.
    """

    def __init__(self, fill_values: list[float], indicate: list[bool], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if len(fill_values) != len(indicate):
            raise ValueError(
                "`fill_values` and `indicate` must have one entry per column. Received: "
                f"fill_values={fill_values}, indicate={indicate}"
            )
        self.fill_values = [float(v) for v in fill_values]
        self.indicate = [bool(f) for f in indicate]

    def call(self, inputs: Any) -> Any:
        x = keras.ops.cast(inputs, self.compute_dtype)
        missing = keras.ops.isnan(x)
        fill = keras.ops.convert_to_tensor(self.fill_values, dtype=self.compute_dtype)
        filled = keras.ops.where(missing, fill, x)
        flagged = [i for i, f in enumerate(self.indicate) if f]
        if not flagged:
            return filled
        indicators = keras.ops.take(keras.ops.cast(missing, self.compute_dtype), flagged, axis=1)
        return keras.ops.concatenate([filled, indicators], axis=1)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], len(self.fill_values) + sum(self.indicate))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "fill_values": self.fill_values, "indicate": self.indicate}
