"""`cnn`: plain convolution stacks for images.

`STARTING_POINTS` are enqueued as the first trials of every new study, in this order:
`FAST_RECIPE`, the CIFAR-10 speed-run recipe sized for a CPU (see `search_spaces._recipe`
for what it holds and what was measured), then the classic Keras tutorial CNN
(Conv32-Pool-Conv64-Pool-Conv64-Dense64, ReLU, Adam), the benchmarks' baseline, then a
small modern CNN (batch norm, global average pooling, augmentation, AdamW with warmup and
cosine decay). The recipe's ingredients are parameters of the space like any other
(`stem`, `pool_first`, `batch_norm_momentum`, `batch_norm_scale`, `identity_init`,
`decay_kernels_only`, `weight_averaging`), so the region around it is searched. Flip
test-time augmentation is not a parameter: it acts on a trained model
(`automl.spaces.blocks.with_flip_tta`).
"""

from __future__ import annotations

from typing import Any

import keras

from automl.spaces import HyperParameters, ModelSpec
from automl.spaces.blocks import (
    augment,
    choose_activation,
    choose_augmentation,
    choose_dropout,
    choose_initializer,
    choose_regularizer,
    output_head,
    patch_whitening,
    start_as_identity,
)
from automl.spaces.training import choose_training, mixed_precision_on_gpu
from search_spaces._recipe import FAST_RECIPE, fit_recipe

DESCRIPTION = (
    "convolution stacks: stages, filters, kernels, pooling, batch norm, patch whitening, "
    "augmentation, weight averaging; starts from a CPU-sized speed-run recipe"
)
KINDS = ("image",)
TASKS = ("classification", "regression")
ORDER = 20

FILTERS = {1: [16, 32, 64], 2: [32, 64, 128], 3: [64, 128, 256]}
# SGD with momentum, batch norm and batches of 256 trains best at 0.2-0.8 (measured with
# the fast recipe); the shared 1e-4..0.1 range stays for the adaptive optimizers.
SGD_LEARNING_RATES = {"momentum": (1e-3, 1.0), "nesterov": (1e-3, 1.0)}
# Batch norm's moving-average momentum, in Keras' sense (PyTorch's is one minus it):
# Keras' default, airbench's 0.6 and the fast recipe's 0.4 (measured with the probe),
# whose statistics follow the last few batches.
BATCH_NORM_MOMENTA = [0.99, 0.9, 0.6, 0.4]

BASELINE = {
    "stages": 3,
    "convs_per_stage": 1,
    "kernel_size": 3,
    "padding": "valid",
    "filters_1": 32,
    "filters_2": 64,
    "filters_3": 64,
    "pooling": "max",
    "head": "flatten_dense",
    "dense_units": 64,
    "activation": "relu",
    "initializer": "glorot_uniform",
    "regularizer": "none",
    "batch_norm": False,
    "identity_init": False,
    "spatial_dropout": 0.0,
    "dropout": 0.0,
    "label_smoothing": 0.0,
    "augment": "none",
    "batch_size": 64,
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "schedule": "constant",
    "stem": "plain",
    "weight_averaging": "none",
}

MODERN = {  # two 3x3 convolutions per stage, as in the DESIGN notes' measured recipe
    "stages": 3,
    "convs_per_stage": 2,
    "kernel_size": 3,
    "padding": "same",
    "filters_1": 32,
    "filters_2": 64,
    "filters_3": 128,
    "pooling": "max",
    "head": "gap",
    "activation": "relu",
    "initializer": "he_normal",
    "regularizer": "none",
    "batch_norm": True,
    "batch_norm_momentum": 0.99,
    "batch_norm_scale": True,
    "identity_init": False,
    "spatial_dropout": 0.0,
    "dropout": 0.2,
    "label_smoothing": 0.0,
    "augment": "flip_translate",
    "batch_size": 128,
    "optimizer": "adamw",
    "learning_rate": 2e-3,
    "weight_decay": 5e-3,
    "decay_kernels_only": False,
    "schedule": "warmup_cosine",
    "stem": "plain",
    "pool_first": False,
    "weight_averaging": "none",
}

STARTING_POINTS = [FAST_RECIPE, BASELINE, MODERN]


def starting_points(spec: ModelSpec) -> list[dict[str, Any]]:
    """Fresh copies of `STARTING_POINTS`; the recipe adapted to the images' size (or
    left out), with one log line saying why (`search_spaces._recipe.fit_recipe`)."""
    recipe = fit_recipe(spec)
    return [dict(point) for point in ([recipe] if recipe else []) + STARTING_POINTS[1:]]


def grow(params: dict[str, Any], spec: ModelSpec) -> dict[str, Any] | None:
    """`params` with every stage after the first one width step wider (`FILTERS`), for a
    long training with time for enough of its epochs; None when none can widen.

    The first stage works on the largest feature map, so it costs the most per filter
    (on 2 CPU cores: 32/64/128 ran 37 s per CIFAR-10 epoch, 32/128/256 67-78 s, 64/128/256
    105 s); the later stages add capacity for less. At 165 T, with the same 1885 s, the
    fast recipe at 32/128/256 scored 0.872 test (24 epochs) against 0.858 at 32/64/128
    (51 epochs); benchmarks/RESULTS.md, "Recipe width at 165 T".
    """
    wider = dict(params)
    for stage in range(2, int(params.get("stages", 0)) + 1):
        name, choices = f"filters_{stage}", FILTERS[stage]
        if params.get(name) in choices[:-1]:
            wider[name] = choices[choices.index(params[name]) + 1]
    return wider if wider != params else None


def build(hp: HyperParameters, spec: ModelSpec) -> keras.Model:
    """Build and compile one CNN (in mixed precision on a GPU; see `_build`)."""
    with mixed_precision_on_gpu():
        return _build(hp, spec)


def _build(hp: HyperParameters, spec: ModelSpec) -> keras.Model:
    """Build and compile one CNN.

    Varies the stem (a patch-whitening 2x2 convolution or none), stages (1-3),
    convolutions per stage, where a stage pools (after its first of two convolutions, as
    the speed-runs do: the second runs on a quarter of the pixels, or at its end),
    filters per stage, kernel size, padding, pooling, the head (flatten + dense or
    global average pooling), activation, initializer, convolutions started as the
    identity, L1/L2, batch norm (its momentum, with or without a scale), spatial dropout
    after each stage, dropout, label smoothing, augmentation (flips, translations,
    crops), optimizer, learning rate, schedule, weight decay (on every weight or the
    kernels only), weight averaging (EMA) and batch size.
    """
    stem = hp.Choice("stem", ["plain", "whiten"])
    stages = hp.Int("stages", 1, 3)
    convs = hp.Int("convs_per_stage", 1, 2)
    with hp.conditional_scope("convs_per_stage", 2):
        pool_first = hp.Boolean("pool_first")
    kernel = hp.Choice("kernel_size", [3, 5])
    padding = hp.Choice("padding", ["same", "valid"])
    filters = [hp.Choice(f"filters_{s}", FILTERS[s]) for s in range(1, stages + 1)]
    pooling = hp.Choice("pooling", ["max", "avg"])
    head = hp.Choice("head", ["gap", "flatten_dense"])
    with hp.conditional_scope("head", "flatten_dense"):
        dense_units = hp.Choice("dense_units", [64, 128, 256])
    activation = choose_activation(hp)
    initializer = choose_initializer(hp)
    regularizer = choose_regularizer(hp)
    batch_norm = hp.Boolean("batch_norm")
    with hp.conditional_scope("batch_norm", True):
        momentum = hp.Choice("batch_norm_momentum", BATCH_NORM_MOMENTA)
        scale = hp.Boolean("batch_norm_scale", default=True)
    identity_init = hp.Boolean("identity_init")
    spatial_dropout = choose_dropout(hp, name="spatial_dropout", high=0.3)
    dropout = choose_dropout(hp)
    recipe = choose_augmentation(hp)
    compile_model = choose_training(
        hp, spec, averaging=True, kernel_decay=True, learning_rates=SGD_LEARNING_RATES
    )

    inputs, x = spec.inputs()
    x = augment(x, recipe)
    if stem == "whiten" and min(x.shape[1:3]) >= 2:
        x = keras.layers.Activation(activation)(patch_whitening(x, spec))
    pool = keras.layers.MaxPooling2D if pooling == "max" else keras.layers.AveragePooling2D
    for stage, width in enumerate(filters, start=1):
        for index in range(convs):
            # Fall back to "same" where "valid" would shrink the map to nothing.
            pad = padding if min(x.shape[1:3]) >= kernel + 2 else "same"
            conv = keras.layers.Conv2D(
                width,
                kernel,
                padding=pad,
                kernel_initializer=initializer,
                kernel_regularizer=regularizer,
                use_bias=not batch_norm,
            )
            x = conv(x)
            if identity_init:
                start_as_identity(conv)
            if pool_first and index == 0 and min(x.shape[1:3]) >= 4:
                x = pool(pool_size=2)(x)
            if batch_norm:
                x = keras.layers.BatchNormalization(momentum=momentum, scale=scale)(x)
            x = keras.layers.Activation(activation)(x)
        if spatial_dropout > 0:
            x = keras.layers.SpatialDropout2D(spatial_dropout)(x)
        if not pool_first and stage < stages and min(x.shape[1:3]) >= 4:
            x = pool(pool_size=2)(x)
    if head == "gap":
        x = keras.layers.GlobalAveragePooling2D()(x)
    else:
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(
            dense_units,
            activation=activation,
            kernel_initializer=initializer,
            kernel_regularizer=regularizer,
        )(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout)(x)
    model = keras.Model(inputs, output_head(x, spec, initializer), name="cnn")
    return compile_model(model)
