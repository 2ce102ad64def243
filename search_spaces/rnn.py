"""`rnn`: recurrent networks (LSTM, GRU, SimpleRNN) for sequences, text and images.

Sequences go in as they are (timesteps x features, standardized); text goes through a
token embedding whose padding mask (id 0) makes every recurrent layer skip padded steps;
an image is read row by row, (H, W, C) -> H timesteps of W*C features, the classic
MNIST RNN. One to three recurrent layers are stacked (all but the last return their
sequences), optionally bidirectional, with dropout between them; the last layer's final
state feeds an optional dense layer and the output head.

`STARTING_POINTS` hold one sensible recipe: a single bidirectional LSTM of 64 units,
dropout 0.2, Adam at 3e-3 with cosine decay, batch 64. `starting_points(spec)` gives it
with exactly the parameters the build samples for that data kind (the token embedding's
width only for text).
"""

from __future__ import annotations

import math
from typing import Any

import keras

from automl.spaces import HyperParameters, ModelSpec
from automl.spaces.blocks import (
    choose_activation,
    choose_dropout,
    choose_initializer,
    choose_regularizer,
    output_head,
)
from automl.spaces.training import choose_training
from search_spaces import SPACES

DESCRIPTION = "LSTM, GRU and SimpleRNN, stacked or bidirectional (images read row by row)"
KINDS = ("sequence", "text", "image")
TASKS = ("classification", "regression")
ORDER = 40

CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple_rnn": keras.layers.SimpleRNN}
# Recurrent dropout is a choice among a few rates, 0 included: any rate above 0 makes
# Keras fall back from the fused (cuDNN) LSTM/GRU kernels to the generic step loop, which
# is several times slower on GPUs, so a continuous range would almost never try "off".
RECURRENT_DROPOUTS = (0.0, 0.1, 0.2, 0.3)
DENSE_UNITS = (64, 128, 256)

BIDIRECTIONAL_LSTM = {
    "cell": "lstm",
    "layers": 1,
    "units": 64,
    "bidirectional": True,
    "dropout": 0.2,
    "recurrent_dropout": 0.0,
    "embedding_dim": 64,  # text only
    "dense_layer": False,
    "initializer": "glorot_uniform",
    "regularizer": "none",
    "label_smoothing": 0.0,
    "batch_size": 64,
    "optimizer": "adam",
    "learning_rate": 3e-3,
    "schedule": "cosine",
}

STARTING_POINTS = [BIDIRECTIONAL_LSTM]

_TEXT_ONLY = {"embedding_dim"}


def starting_points(spec: ModelSpec) -> list[dict[str, Any]]:
    """`STARTING_POINTS` with exactly the parameters `build` samples for `spec.kind`."""
    if spec.kind not in KINDS:
        return []
    drop = set() if spec.kind == "text" else _TEXT_ONLY
    return [{k: v for k, v in point.items() if k not in drop} for point in STARTING_POINTS]


def build(hp: HyperParameters, spec: ModelSpec) -> keras.Model:
    """Build and compile one recurrent network.

    Varies the cell (LSTM, GRU, SimpleRNN), layers (1-3), units (16-256, log),
    bidirectional, dropout between layers, recurrent dropout, the token embedding's width
    (text only), an optional dense layer before the head (its units and activation), the
    initializer of the dense and output layers, L1/L2 on every kernel, label smoothing,
    optimizer, learning rate, schedule and batch size.

    Raises:
        UsageError: For data kinds other than sequence, text and image.
    """
    SPACES["rnn"].require_kind(spec)
    cell = hp.Choice("cell", list(CELLS))
    layers = hp.Int("layers", 1, 3)
    units = hp.Int("units", 16, 256, sampling="log")
    bidirectional = hp.Boolean("bidirectional")
    dropout = choose_dropout(hp)
    recurrent_dropout = hp.Choice("recurrent_dropout", list(RECURRENT_DROPOUTS))
    embedding_dim = None
    if spec.kind == "text":  # nothing to embed otherwise, so the name never enters the trial
        embedding_dim = hp.Int("embedding_dim", 16, 256, sampling="log")
    dense_layer = hp.Boolean("dense_layer")
    with hp.conditional_scope("dense_layer", True):
        dense_units = hp.Choice("dense_units", list(DENSE_UNITS))
        activation = choose_activation(hp)
    initializer = choose_initializer(hp)
    regularizer = choose_regularizer(hp)
    compile_model = choose_training(hp, spec)

    inputs, x = spec.inputs()
    if spec.kind == "text":
        # mask_zero: every recurrent layer skips padding steps (and Bidirectional both ways).
        x = keras.layers.Embedding(
            spec.vocab_size or 1, embedding_dim, mask_zero=True, name="token_embedding"
        )(x)
    elif spec.kind == "image":
        height, *rest = spec.input_shape
        x = keras.layers.Reshape((height, math.prod(rest)), name="rows_as_steps")(x)
    cell_options: dict[str, Any] = {}
    if spec.kind == "text" and cell != "simple_rnn":
        # cuDNN takes only right-padded masks with no empty row; on a GPU any other mask
        # (left padding, padding mid-sequence, an empty text) fails a graph assertion
        # mid-fit. The padding of text data is not known here, so take the generic kernel.
        cell_options["use_cudnn"] = False
    for i in range(layers):
        layer = CELLS[cell](
            units,
            return_sequences=i < layers - 1,
            recurrent_dropout=recurrent_dropout,
            kernel_regularizer=regularizer,
            recurrent_regularizer=regularizer,
            **cell_options,
        )
        if bidirectional:
            layer = keras.layers.Bidirectional(layer)
        x = layer(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout)(x)
    if dense_layer:
        x = keras.layers.Dense(
            dense_units,
            activation=activation,
            kernel_initializer=initializer,
            kernel_regularizer=regularizer,
        )(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout)(x)
    model = keras.Model(inputs, output_head(x, spec, initializer), name="rnn")
    return compile_model(model)
