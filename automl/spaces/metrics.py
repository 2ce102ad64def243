"""Metrics Keras has only for one-hot labels: AUC and F1 on integer class labels.

Keras' `AUC` and `F1Score` expect one-hot targets; automl's datasets carry integer
labels (what sparse cross-entropy takes). These subclasses one-hot the labels first and
agree with scikit-learn's `roc_auc_score(multi_class="ovr")` and
`f1_score(average="macro")`. Registered with Keras; exported models are re-saved without
them (see `automl.export.save_plain`), so they load with plain Keras.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


def _one_hot(y_true: Any, num_classes: int) -> Any:
    return ops.one_hot(ops.reshape(ops.cast(y_true, "int32"), (-1,)), num_classes)


@keras.saving.register_keras_serializable(package="automl")
class SparseAUC(keras.metrics.AUC):
    """ROC AUC, one class against the rest, averaged over classes (macro).

    For two classes this equals the binary AUC of the positive class.

    Args:
        num_classes: Number of classes (the width of the model's softmax output).
    """

    def __init__(self, num_classes: int, name: str = "auc", **kwargs: Any) -> None:
        kwargs.pop("multi_label", None)  # fixed: one curve per class
        kwargs.pop("num_labels", None)
        super().__init__(name=name, multi_label=True, num_labels=num_classes, **kwargs)
        self.num_classes = num_classes

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        """Accumulate one batch of integer labels and class probabilities."""
        return super().update_state(_one_hot(y_true, self.num_classes), y_pred, sample_weight)

    def get_config(self) -> dict[str, Any]:  # noqa: D102
        return {**super().get_config(), "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="automl")
class SparseF1(keras.metrics.F1Score):
    """F1 of the arg-max class, averaged over classes (macro by default).

    Args:
        num_classes: Number of classes.
        average: "macro", "weighted" or "micro", as in `keras.metrics.F1Score`.
    """

    def __init__(
        self, num_classes: int, average: str = "macro", name: str = "f1", **kwargs: Any
    ) -> None:
        kwargs.pop("threshold", None)  # fixed: the arg-max class counts as predicted
        super().__init__(average=average, threshold=None, name=name, **kwargs)
        self.num_classes = num_classes

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        """Accumulate one batch of integer labels and class probabilities."""
        return super().update_state(_one_hot(y_true, self.num_classes), y_pred, sample_weight)

    def get_config(self) -> dict[str, Any]:  # noqa: D102
        config = super().get_config()
        config.pop("threshold", None)
        return {**config, "num_classes": self.num_classes}
