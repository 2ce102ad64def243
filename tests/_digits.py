"""Digits from scikit-learn as every data kind, for the space tests.

"sequence": 8 rows of 8 pixels; "text": the 64 intensities (0-16) as token ids, a
stand-in for real text until the text datasets land; "short_text": 16 tokens (2x2 block
means); "image": 8x8x1 pixels scaled to 0-255.
"""

from __future__ import annotations

import functools

import numpy as np
from sklearn.datasets import load_digits

from automl.spaces import ModelSpec

N_TRAIN = 1400


@functools.cache
def digits_as(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Digits as `kind` data (or "short_text"), shuffled once (the raw order groups writers)."""
    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    pixels, labels = digits.data[order], digits.target[order]
    if kind == "short_text":
        blocks = pixels.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4))
        return np.rint(blocks).reshape(-1, 16).astype("int32"), labels
    if kind == "sequence":
        return pixels.reshape(-1, 8, 8).astype("float32"), labels
    if kind == "text":
        return pixels.astype("int32"), labels
    return (pixels.reshape(-1, 8, 8, 1) * (255 / 16)).astype("float32"), labels


def digits_spec(kind: str, task: str = "classification", max_epochs: int = 3) -> ModelSpec:
    x, y = digits_as(kind)
    kind = "text" if kind == "short_text" else kind
    normalization = None
    if kind == "sequence":  # per feature, over training rows and timesteps
        train = x[:N_TRAIN]
        normalization = (train.mean(axis=(0, 1)), train.var(axis=(0, 1)))
    return ModelSpec(
        input_shape=x.shape[1:],
        kind=kind,
        task=task,
        num_classes=1 if task == "regression" else 10,
        n_train=N_TRAIN,
        max_epochs=max_epochs,
        normalization=normalization,
        vocab_size=17 if kind == "text" else None,
        target_stats=(float(y.mean()), float(y.std())) if task == "regression" else None,
    )


def fit_on_digits(model, hp, kind: str, epochs: int = 3) -> list[float]:
    """Train on the first N_TRAIN rows with the space's callbacks and fit arguments;
    returns the validation accuracy of each epoch on the rest."""
    x, y = digits_as(kind)
    history = model.fit(
        x[:N_TRAIN],
        y[:N_TRAIN],
        validation_data=(x[N_TRAIN:], y[N_TRAIN:]),
        epochs=epochs,
        verbose=0,
        callbacks=hp.callbacks,
        **hp.fit_kwargs,
    )
    return history.history["val_accuracy"]
