"""`mlp`: dense networks for vector data (and flattened images or sequences)."""

from __future__ import annotations

import keras

from automl.spaces import HyperParameters, ModelSpec
from automl.spaces.blocks import (
    choose_activation,
    choose_dropout,
    choose_initializer,
    choose_normalization,
    choose_regularizer,
    normalization_layer,
    output_head,
)
from automl.spaces.training import choose_training

DESCRIPTION = "dense networks: depth, width, activation, init, L1/L2, dropout, batch/layer norm"
KINDS = ("vector", "image", "sequence", "text")
TASKS = ("classification", "regression")
ORDER = 10


def build(hp: HyperParameters, spec: ModelSpec) -> keras.Model:
    """Build and compile one MLP.

    Varies depth (1-4 layers), width (16-512, log), a taper that narrows later layers,
    activation, initializer, L1/L2, normalization (batch or layer), dropout, label
    smoothing, optimizer, learning rate, schedule and batch size.
    """
    layers = hp.Int("layers", 1, 4)
    units = hp.Int("units", 16, 512, sampling="log")
    taper = hp.Choice("taper", [1.0, 0.5])
    activation = choose_activation(hp)
    initializer = choose_initializer(hp)
    regularizer = choose_regularizer(hp)
    norm = choose_normalization(hp)
    dropout = choose_dropout(hp)
    compile_model = choose_training(hp, spec)

    inputs, x = spec.inputs()
    if spec.kind == "text":
        x = keras.layers.Embedding(spec.vocab_size or 1, 32)(x)
    if len(x.shape) > 2:
        x = keras.layers.Flatten()(x)
    for i in range(layers):
        width = max(8, int(units * taper**i))
        x = keras.layers.Dense(
            width,
            kernel_initializer=initializer,
            kernel_regularizer=regularizer,
            use_bias=norm == "none",
        )(x)
        layer = normalization_layer(norm)
        if layer is not None:
            x = layer(x)
        x = keras.layers.Activation(activation)(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout)(x)
    model = keras.Model(inputs, output_head(x, spec, initializer), name="mlp")
    return compile_model(model)
