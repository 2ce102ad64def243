"""`transformer`: attention encoders for text and sequences, and a ViT-style one for images.

Text: token embedding to `d_model` (id 0 is padding: its mask keeps padded steps out of
attention and pooling). A text with no token ("", "!!!") is a row of padding only: Keras'
masked softmax gives its attention all-zero weights, and the pooling gives it zeros, so
it predicts from the head's bias alone instead of turning the loss NaN (issue #14).
Sequences: a dense projection of each timestep to `d_model`. Then a position embedding
("learned", "sinusoidal" or "none"), 1-4 encoder blocks (multi-head self-attention and a
feed-forward layer, each with a residual connection and layer normalization before or
after it), global mean or max pooling over steps, and the output head.

Images: a small patch transformer. The image is cut into non-overlapping patches by a
`Conv2D(d_model, patch, strides=patch)`, the patch grid is flattened to a sequence, a
learned position embedding is added, and the same encoder blocks and mean pooling
follow; augmentation is searched as in the convolutional spaces. The patch size is a
fixed choice for every study; where it does not divide an image side, that side uses its
largest divisor below it (so 28x28 at patch 8 takes 7x7 patches).

Parameters with one meaning on both paths share one name (`layers`, `d_model`, `heads`,
`key_dim`, `ff_multiplier`, `dropout`, `norm_first`, `activation`), so a study sees one
distribution per name whichever data it runs on.

`STARTING_POINTS` hold one small recipe: 2 pre-norm blocks of width 64 with 4 heads of
key dim 32, GELU, learned positions, AdamW with warmup and cosine decay, batch 64.
`starting_points(spec)` gives it with exactly the parameters the build samples for that
data kind.
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
    output_head,
)
from automl.spaces.layers import (
    MaskedGlobalAveragePooling1D,
    MaskedGlobalMaxPooling1D,
    PositionEmbedding,
    SinusoidalPositionEmbedding,
)
from automl.spaces.training import choose_training
from search_spaces import SPACES

DESCRIPTION = (
    "attention encoders: heads, key dim, feed-forward width, layers, positions; "
    "a ViT-style patch transformer for images"
)
KINDS = ("sequence", "text", "image")
TASKS = ("classification", "regression")
ORDER = 50

D_MODELS = (32, 64, 128, 256)
HEADS = (1, 2, 4, 8)
KEY_DIMS = (16, 32, 64)
FF_MULTIPLIERS = (1, 2, 4)
POSITIONS = ("learned", "sinusoidal", "none")
POOLINGS = ("mean", "max")
PATCH_SIZES = (2, 4, 8)
# Attention costs steps^2: larger images get larger patches, at most this many per side.
MAX_PATCHES_PER_SIDE = 32
# Smooth activations are the norm in feed-forward layers; saturating ones are left out.
FF_ACTIVATIONS = ("relu", "gelu", "swish", "leaky_relu", "elu", "mish")
# Attention stacks train poorly with plain SGD or Adagrad and diverge above ~1e-2.
OPTIMIZERS = ("adam", "adamw", "nadam", "lion")
LEARNING_RATE = (1e-4, 1e-2)

SMALL = {
    "d_model": 64,
    "layers": 2,
    "heads": 4,
    "key_dim": 32,
    "ff_multiplier": 2,
    "dropout": 0.1,
    "norm_first": True,
    "activation": "gelu",
    "position": "learned",  # text and sequences
    "pooling": "mean",  # text and sequences
    "patch_size": 4,  # images
    "augment": "translate",  # images
    "label_smoothing": 0.0,
    "batch_size": 64,
    "optimizer": "adamw",
    "learning_rate": 1e-3,
    "weight_decay": 1e-2,
    "schedule": "warmup_cosine",
}

STARTING_POINTS = [SMALL]

_SEQUENCE_ONLY = {"position", "pooling"}
_IMAGE_ONLY = {"patch_size", "augment"}


def starting_points(spec: ModelSpec) -> list[dict[str, Any]]:
    """`STARTING_POINTS` with exactly the parameters `build` samples for `spec.kind`."""
    if spec.kind not in KINDS:
        return []
    drop = _SEQUENCE_ONLY if spec.kind == "image" else _IMAGE_ONLY
    return [{k: v for k, v in point.items() if k not in drop} for point in STARTING_POINTS]


def patch_side(size: int, patch: int) -> int:
    """The patch length along an image side of `size` pixels for a sampled `patch`.

    The largest divisor of `size` that is at most `patch`, so patches tile the side
    exactly; grown to the smallest divisor that leaves at most `MAX_PATCHES_PER_SIDE`
    patches, so large images stay affordable.
    """
    divisors = [d for d in range(1, size + 1) if size % d == 0]
    side = max(d for d in divisors if d <= patch)
    if size // side > MAX_PATCHES_PER_SIDE:
        side = min(d for d in divisors if size // d <= MAX_PATCHES_PER_SIDE)
    return side


def encoder_block(
    x: keras.KerasTensor,
    *,
    heads: int,
    key_dim: int,
    ff_units: int,
    dropout: float,
    activation: str,
    norm_first: bool,
    name: str,
) -> keras.KerasTensor:
    """One transformer encoder block: self-attention, then a feed-forward layer.

    Each sub-layer has a residual connection; with `norm_first` its input is layer
    normalized (pre-norm: stabler in deep stacks and at high learning rates), otherwise
    its residual sum is (post-norm, the original Transformer's layout). Keras masks
    (padding) flow through every layer here and reach the attention as its query and
    value masks; Keras 3's masked softmax zeros the weights of a row with no unmasked
    key, so an all-padding text stays finite here (its steps carry the output bias).
    """
    d_model = x.shape[-1]

    def sublayer(x: keras.KerasTensor, transform: Any, part: str) -> keras.KerasTensor:
        h = keras.layers.LayerNormalization(name=f"{name}_{part}_norm")(x) if norm_first else x
        h = transform(h)
        if dropout > 0:
            h = keras.layers.Dropout(dropout, name=f"{name}_{part}_dropout")(h)
        x = keras.layers.Add(name=f"{name}_{part}_residual")([x, h])
        if not norm_first:
            x = keras.layers.LayerNormalization(name=f"{name}_{part}_norm")(x)
        return x

    def attention(h: keras.KerasTensor) -> keras.KerasTensor:
        layer = keras.layers.MultiHeadAttention(
            heads, key_dim, dropout=dropout, name=f"{name}_attention"
        )
        return layer(h, h)

    def feed_forward(h: keras.KerasTensor) -> keras.KerasTensor:
        h = keras.layers.Dense(ff_units, activation=activation, name=f"{name}_ff_in")(h)
        return keras.layers.Dense(d_model, name=f"{name}_ff_out")(h)

    x = sublayer(x, attention, "attention")
    return sublayer(x, feed_forward, "ff")


def build(hp: HyperParameters, spec: ModelSpec) -> keras.Model:
    """Build and compile one transformer encoder.

    Varies width (`d_model`), layers (1-4), heads, key dim, the feed-forward multiplier,
    dropout (attention, residual and before the head), pre- or post-norm, the
    feed-forward activation, label smoothing, optimizer (Adam family), learning rate,
    schedule and batch size; for text and sequences also the position embedding and the
    pooling, for images the patch size and augmentation.

    Raises:
        UsageError: For data kinds other than sequence, text and image.
    """
    SPACES["transformer"].require_kind(spec)
    d_model = hp.Choice("d_model", list(D_MODELS))
    layers = hp.Int("layers", 1, 4)
    heads = hp.Choice("heads", list(HEADS))
    key_dim = hp.Choice("key_dim", list(KEY_DIMS))
    ff_multiplier = hp.Choice("ff_multiplier", list(FF_MULTIPLIERS))
    dropout = choose_dropout(hp, high=0.3)
    norm_first = hp.Boolean("norm_first", default=True)
    activation = choose_activation(hp, FF_ACTIVATIONS)
    # Data-kind branches: a name is sampled only where it acts, so a text study never
    # carries patch_size and an image study never carries pooling.
    if spec.kind == "image":
        patch = hp.Choice("patch_size", list(PATCH_SIZES))
        recipe = choose_augmentation(hp)
        position, pooling = "learned", "mean"
    else:
        position = hp.Choice("position", list(POSITIONS))
        pooling = hp.Choice("pooling", list(POOLINGS))
    compile_model = choose_training(hp, spec, choices=OPTIMIZERS, learning_rate=LEARNING_RATE)

    inputs, x = spec.inputs()
    if spec.kind == "text":
        x = keras.layers.Embedding(
            spec.vocab_size or 1, d_model, mask_zero=True, name="token_embedding"
        )(x)
    elif spec.kind == "sequence":
        x = keras.layers.Dense(d_model, name="step_projection")(x)
    else:
        height, width = x.shape[1], x.shape[2]
        x = augment(x, recipe)  # keeps the image size, so one patch grid fits both passes
        size = (patch_side(height, patch), patch_side(width, patch))
        x = keras.layers.Conv2D(d_model, size, strides=size, name="patch_embedding")(x)
        x = keras.layers.Reshape((-1, d_model), name="patches_as_steps")(x)
    if position == "learned":
        x = PositionEmbedding(name="position_embedding")(x)
    elif position == "sinusoidal":
        x = SinusoidalPositionEmbedding(name="position_embedding")(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    for i in range(layers):
        x = encoder_block(
            x,
            heads=heads,
            key_dim=key_dim,
            ff_units=d_model * ff_multiplier,
            dropout=dropout,
            activation=activation,
            norm_first=norm_first,
            name=f"block{i + 1}",
        )
    if norm_first:  # pre-norm leaves the residual stream unnormalized
        x = keras.layers.LayerNormalization(name="final_norm")(x)
    if pooling == "mean":
        # Not Keras' GlobalAveragePooling1D: it pools a text with no token to 0/0 = NaN.
        x = MaskedGlobalAveragePooling1D(name="pool")(x)
    else:
        x = MaskedGlobalMaxPooling1D(name="pool")(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    model = keras.Model(inputs, output_head(x, spec), name="transformer")
    return compile_model(model)
