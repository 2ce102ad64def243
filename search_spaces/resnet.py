"""`resnet`: residual convolution networks for images.

A 3x3 convolution stem, then 2-4 stages of residual blocks, global average pooling and
the output layer. Each stage after the first halves the feature map with a stride-2
block (never below 2x2, so 8x8 digits still build); a block whose shape changes takes a
projection shortcut (strided 1x1 convolution + batch norm), the others an identity.
Blocks are "basic" (two 3x3 convolutions) or "bottleneck" (1x1 reduce, 3x3, 1x1 expand).
Batch norm is always on: it is what lets the residual stacks train at these learning
rates.

`STARTING_POINTS` hold one fast recipe for CIFAR-10-sized data on 2 CPU cores: four
stages of one basic block (24/48/96/192 filters), ReLU, He init, horizontal flips, no
dropout, AdamW with warmup and cosine decay over the trial's epochs, batch 128. On
CIFAR-10 at 6 epochs it reached 77.5 % test accuracy at about 100 s per epoch, level with
the cnn space's modern starting point (78.0 %, about 130 s per epoch). Three stages of
32/64/128 filters with dropout and translations were slower and reached only 72.6 %.
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
)
from automl.spaces.training import choose_training

DESCRIPTION = "residual CNNs: stages, blocks per stage, width multiplier, basic or bottleneck"
KINDS = ("image",)
TASKS = ("classification", "regression")
ORDER = 30

# Filters of stages 1-4 at width multiplier 1; a bottleneck block outputs `expansion` times
# its stage's filters.
BASE_WIDTHS = (16, 32, 64, 128)
WIDTH_MULTIPLIERS = (0.5, 1.0, 1.5, 2.0)
# Inputs this large (in pixels per side) get a stride-2 stem, to stay affordable on CPUs.
_STEM_STRIDE_FROM = 64

# Measured on CIFAR-10 (see the module docstring): a fourth, cheap 4x4 stage at width 1.5
# trains as fast as three stages of 32/64/128 filters and fits much better in 6 epochs;
# short runs underfit, hence no dropout and flips only.
FAST_CIFAR = {
    "stages": 4,
    "blocks_per_stage": 1,
    "width_multiplier": 1.5,
    "block_type": "basic",
    "activation": "relu",
    "initializer": "he_normal",
    "regularizer": "none",
    "spatial_dropout": 0.0,
    "dropout": 0.0,
    "label_smoothing": 0.0,
    "augment": "flip",
    "batch_size": 128,
    "optimizer": "adamw",
    "learning_rate": 2e-3,
    "schedule": "warmup_cosine",
    "weight_decay": 5e-3,
}

STARTING_POINTS = [FAST_CIFAR]


def starting_points(spec: ModelSpec) -> list[dict[str, Any]]:
    """Fresh copies of `STARTING_POINTS`: the same recipe for every image set."""
    return [dict(point) for point in STARTING_POINTS]


def build(hp: HyperParameters, spec: ModelSpec) -> keras.Model:
    """Build and compile one residual network.

    Varies stages (2-4), blocks per stage (1-3), the width multiplier, the block type
    (basic or bottleneck, with its expansion), activation, initializer, L1/L2, spatial
    dropout after each stage, dropout before the head, label smoothing, augmentation,
    optimizer, learning rate, schedule and batch size.
    """
    stages = hp.Int("stages", 2, 4)
    blocks = hp.Int("blocks_per_stage", 1, 3)
    multiplier = hp.Choice("width_multiplier", list(WIDTH_MULTIPLIERS))
    block_type = hp.Choice("block_type", ["basic", "bottleneck"])
    with hp.conditional_scope("block_type", "bottleneck"):
        expansion = hp.Choice("bottleneck_expansion", [2, 4])
    activation = choose_activation(hp)
    initializer = choose_initializer(hp)
    regularizer = choose_regularizer(hp)
    spatial_dropout = choose_dropout(hp, name="spatial_dropout", high=0.3)
    dropout = choose_dropout(hp)
    recipe = choose_augmentation(hp)
    compile_model = choose_training(hp, spec)

    widths = [max(8, int(round(base * multiplier))) for base in BASE_WIDTHS[:stages]]
    conv = _ConvFactory(initializer, regularizer, activation)

    inputs, x = spec.inputs()
    x = augment(x, recipe)
    stem_stride = 2 if min(x.shape[1:3]) >= _STEM_STRIDE_FROM else 1
    x = conv.bn_act(conv(widths[0], 3, stem_stride, name="stem_conv")(x))
    for stage, width in enumerate(widths, start=1):
        for block in range(1, blocks + 1):
            # Halve the map at the start of each later stage while it stays >= 2x2.
            downsample = stage > 1 and block == 1 and min(x.shape[1:3]) >= 4
            stride = 2 if downsample else 1
            if block_type == "basic":
                x = _basic_block(x, width, stride, conv)
            else:
                x = _bottleneck_block(x, width, width * expansion, stride, conv)
        if spatial_dropout > 0:
            x = keras.layers.SpatialDropout2D(spatial_dropout)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout)(x)
    model = keras.Model(inputs, output_head(x, spec, initializer), name="resnet")
    return compile_model(model)


class _ConvFactory:
    """Convolutions and batch norm + activation with the trial's shared settings."""

    def __init__(
        self,
        initializer: str,
        regularizer: keras.regularizers.Regularizer | None,
        activation: str,
    ) -> None:
        self.initializer, self.regularizer, self.activation = initializer, regularizer, activation

    def __call__(
        self, filters: int, kernel: int, stride: int = 1, name: str | None = None
    ) -> keras.layers.Conv2D:
        # No bias: the batch norm that follows every convolution has its own offset.
        return keras.layers.Conv2D(
            filters,
            kernel,
            strides=stride,
            padding="same",
            use_bias=False,
            kernel_initializer=self.initializer,
            kernel_regularizer=self.regularizer,
            name=name,
        )

    def bn_act(self, x: keras.KerasTensor) -> keras.KerasTensor:
        x = keras.layers.BatchNormalization()(x)
        return keras.layers.Activation(self.activation)(x)


def _shortcut(
    x: keras.KerasTensor, filters: int, stride: int, conv: _ConvFactory
) -> keras.KerasTensor:
    """Identity, or a strided 1x1 projection + batch norm where the shape changes."""
    if stride == 1 and x.shape[-1] == filters:
        return x
    return keras.layers.BatchNormalization()(conv(filters, 1, stride)(x))


def _basic_block(
    x: keras.KerasTensor, filters: int, stride: int, conv: _ConvFactory
) -> keras.KerasTensor:
    """Two 3x3 convolutions with a residual connection (ResNet-18/34 style)."""
    shortcut = _shortcut(x, filters, stride, conv)
    y = conv.bn_act(conv(filters, 3, stride)(x))
    y = keras.layers.BatchNormalization()(conv(filters, 3)(y))
    y = keras.layers.Add()([shortcut, y])
    return keras.layers.Activation(conv.activation)(y)


def _bottleneck_block(
    x: keras.KerasTensor, filters: int, out_filters: int, stride: int, conv: _ConvFactory
) -> keras.KerasTensor:
    """1x1 reduce, strided 3x3, 1x1 expand to `out_filters` (ResNet-50 style)."""
    shortcut = _shortcut(x, out_filters, stride, conv)
    y = conv.bn_act(conv(filters, 1)(x))
    y = conv.bn_act(conv(filters, 3, stride)(y))
    y = keras.layers.BatchNormalization()(conv(out_filters, 1)(y))
    y = keras.layers.Add()([shortcut, y])
    return keras.layers.Activation(conv.activation)(y)
