"""Saving and loading the models automl trains, so that they load anywhere.

Below both `export` and `tracking` (each saves or loads models): it registers automl's
custom layers, losses and metrics on load, and swaps them for Keras' built-ins before a
save, so a saved model needs no automl unless it uses automl's custom layers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras
    import numpy as np

    from automl.data import Dataset


def save_plain(
    model: keras.Model, path: Path, wrap: Callable[[keras.Model], keras.Model] | None = None
) -> None:
    """Save a trained model so that it takes raw data and loads without surprises.

    automl's own training objects (the smoothed loss, the AUC/F1 metrics on integer
    labels) are swapped for Keras' built-ins first (the weights are unchanged), so a
    model without automl's custom layers loads with plain `keras.models.load_model`.
    With `wrap` (tables, texts), the saved model is the dataset's preprocessing in front
    of `model`; it is saved uncompiled, for prediction.
    """
    _compile_without_automl_objects(model)
    (wrap(model) if wrap is not None else model).save(path)


def _compile_without_automl_objects(model: keras.Model) -> None:
    """Recompile with built-in loss/metrics when automl's registered ones are in use."""
    config = model.get_compile_config() if model.compiled else None
    if not config:
        return

    def ours(item: Any) -> bool:
        return isinstance(item, dict) and str(item.get("registered_name")).startswith("automl>")

    metrics = list(config.get("metrics") or [])
    if not (ours(config.get("loss")) or any(ours(m) for m in metrics)):
        return
    loss = "sparse_categorical_crossentropy" if ours(config.get("loss")) else model.loss
    model.compile(optimizer=model.optimizer, loss=loss, metrics=[m for m in metrics if not ours(m)])


def load_model(path: str | Path, compile: bool = True) -> keras.Model:
    """Load a model automl saved, with automl's custom layers and losses registered
    (`compile=False`: for prediction only, without its optimizer's state)."""
    import keras

    import automl.data.layers  # noqa: F401 - registers the preprocessing layers
    import automl.spaces.layers  # noqa: F401 - registers the custom layers
    import automl.spaces.losses  # noqa: F401 - registers the custom losses
    import automl.spaces.metrics  # noqa: F401 - registers the custom metrics

    return keras.models.load_model(path, safe_mode=True, compile=compile)


def predict_raw(model: keras.Model, data: Dataset, x: Any) -> np.ndarray:
    """`model`'s predictions for raw rows `x` of `data` (a split's `x_val` or `x_test`):
    image files decoded batch by batch, table columns as the model takes them."""
    from automl.data._batches import predict_inputs
    from automl.data._encoding import model_input

    stream = getattr(data.encoder, "batches", None)  # images decoded batch by batch
    if stream is not None:
        return model.predict(stream(x, None, 256), verbose=0)
    return model.predict(**predict_inputs(model_input(x, model), 512), verbose=0)
