"""Reusable layer helpers that built-in spaces share and users may import.

Each `choose_*` function samples its own parameters (conditional ones only when they
matter, e.g. a regularizer's strength only when there is a regularizer) and returns a
ready value. Training helpers (optimizer, schedule, batch size, loss) are in
`automl.spaces.training`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

    from automl.spaces._hp import HyperParameters
    from automl.spaces._spec import ModelSpec

# "swish" is Keras' name for SiLU; both names resolve to the same function.
ACTIVATIONS = ("relu", "leaky_relu", "elu", "selu", "gelu", "swish", "tanh", "sigmoid", "mish")
INITIALIZERS = (
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "orthogonal",
    "random_normal",
)
REGULARIZERS = ("none", "l2", "l1", "l1l2")
NORMALIZATIONS = ("none", "batch", "layer")
AUGMENTATIONS = ("none", "flip", "translate", "flip_translate", "crop", "flip_crop")


def choose_activation(
    hp: HyperParameters, choices: tuple[str, ...] = ACTIVATIONS, *, name: str = "activation"
) -> str:
    """Sample an activation; returns a name `keras.layers.Activation` accepts."""
    return hp.Choice(name, list(choices))


def choose_initializer(
    hp: HyperParameters, choices: tuple[str, ...] = INITIALIZERS, *, name: str = "initializer"
) -> str:
    """Sample a kernel initializer; returns a Keras initializer name."""
    return hp.Choice(name, list(choices))


def choose_regularizer(
    hp: HyperParameters, choices: tuple[str, ...] = REGULARIZERS
) -> keras.regularizers.Regularizer | None:
    """Sample `regularizer` (none/l1/l2/l1l2) and, when used, its log-scale strength."""
    import keras

    kind = hp.Choice("regularizer", list(choices))
    if kind == "none":
        return None
    strength = hp.Float("regularizer_strength", 1e-6, 1e-2, sampling="log")
    if kind == "l1":
        return keras.regularizers.L1(strength)
    if kind == "l2":
        return keras.regularizers.L2(strength)
    return keras.regularizers.L1L2(l1=strength, l2=strength)


def choose_dropout(hp: HyperParameters, *, name: str = "dropout", high: float = 0.5) -> float:
    """Sample a dropout rate in [0, high]."""
    return hp.Float(name, 0.0, high)


def choose_normalization(
    hp: HyperParameters, choices: tuple[str, ...] = NORMALIZATIONS, *, name: str = "normalization"
) -> str:
    """Sample the normalization kind: "none", "batch" or "layer"."""
    return hp.Choice(name, list(choices))


def normalization_layer(kind: str) -> keras.layers.Layer | None:
    """The layer for a `choose_normalization` value (None for "none")."""
    import keras

    if kind == "batch":
        return keras.layers.BatchNormalization()
    if kind == "layer":
        return keras.layers.LayerNormalization()
    return None


def choose_augmentation(
    hp: HyperParameters, choices: tuple[str, ...] = AUGMENTATIONS, *, name: str = "augment"
) -> str:
    """Sample an image augmentation recipe (see `augment`)."""
    return hp.Choice(name, list(choices))


def augment(x: keras.KerasTensor, recipe: str) -> keras.KerasTensor:
    """Apply an augmentation recipe; the layers act in training only.

    Recipes: "flip" (horizontal), "translate" (10 % shifts, reflected borders), "crop"
    (random 7/8 crops resized back to full size; Keras' RandomCrop passes images through
    uncropped at inference, so resizing keeps the shapes equal) and their "flip_"
    combinations.
    """
    import keras

    if "flip" in recipe:
        x = keras.layers.RandomFlip("horizontal")(x)
    if "translate" in recipe:
        x = keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect")(x)
    if "crop" in recipe:
        height, width = x.shape[1], x.shape[2]
        x = keras.layers.RandomCrop(max(1, height * 7 // 8), max(1, width * 7 // 8))(x)
        x = keras.layers.Resizing(height, width)(x)
    return x


def output_head(
    x: keras.KerasTensor, spec: ModelSpec, initializer: str = "glorot_uniform"
) -> keras.KerasTensor:
    """The output layer: softmax over the classes, or one linear unit for regression.

    A regression head predicts standardized targets and rescales them with the training
    targets' mean and std, so the network works near unit scale and the model still
    outputs raw units.
    """
    import keras

    if spec.task == "regression":
        mean, std = spec.target_stats or (0.0, 1.0)
        x = keras.layers.Dense(1, kernel_initializer=initializer, name="output_standardized")(x)
        return keras.layers.Rescaling(scale=std, offset=mean, name="output")(x)
    return keras.layers.Dense(
        spec.num_classes, activation="softmax", kernel_initializer=initializer, name="output"
    )(x)
