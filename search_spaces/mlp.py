"""`mlp`: dense networks for vector (and flattened image) inputs."""

from __future__ import annotations

import keras

from automl.spaces import HyperParameters, ModelSpec
from automl.spaces.blocks import (
    choose_activation,
    choose_batch_size,
    choose_initializer,
    choose_optimizer,
    choose_regularizer,
    classification_head,
    compile_for_task,
)


def build(hp: HyperParameters, spec: ModelSpec) -> keras.Model:
    """Build and compile one MLP.

    Varies depth (1-4 layers), width (16-512, log), a taper that narrows later layers,
    activation, initializer, L1/L2, dropout, batch norm, optimizer, learning rate and
    batch size.
    """
    layers = hp.Int("layers", 1, 4)
    units = hp.Int("units", 16, 512, sampling="log")
    taper = hp.Choice("taper", [1.0, 0.5])
    activation = choose_activation(hp)
    initializer = choose_initializer(hp)
    regularizer = choose_regularizer(hp)
    batch_norm = hp.Boolean("batch_norm")
    dropout = hp.Float("dropout", 0.0, 0.5)
    batch_size = choose_batch_size(hp, spec)
    optimizer = choose_optimizer(hp, spec, batch_size=batch_size)

    inputs, x = spec.inputs()
    if len(spec.input_shape) > 1:
        x = keras.layers.Flatten()(x)
    for i in range(layers):
        width = max(8, int(units * taper**i))
        x = keras.layers.Dense(
            width,
            kernel_initializer=initializer,
            kernel_regularizer=regularizer,
            use_bias=not batch_norm,
        )(x)
        if batch_norm:
            x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Activation(activation)(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout)(x)
    model = keras.Model(inputs, classification_head(x, spec, initializer), name="mlp")
    return compile_for_task(model, optimizer, spec)
