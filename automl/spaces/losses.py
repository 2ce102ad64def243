"""Losses Keras lacks: sparse categorical cross-entropy with label smoothing.

Registered with Keras, so a saved model that uses it loads once `automl` is imported; the
exported `best_model.keras` is re-saved with the plain loss (see `automl.export`).
"""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="automl")
class SparseCategoricalCrossentropyWithSmoothing(keras.losses.Loss):
    """Cross-entropy on integer labels, with `label_smoothing` as in the one-hot loss.

    Args:
        label_smoothing: In [0, 1); 0.1 spreads 10 % of each target over all classes.
    """

    def __init__(
        self, label_smoothing: float = 0.0, name: str = "smoothed_sparse_crossentropy", **kwargs
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        classes = keras.ops.shape(y_pred)[-1]
        labels = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
        one_hot = keras.ops.one_hot(labels, classes, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, label_smoothing=self.label_smoothing
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
