"""Reusable layer helpers that built-in spaces share and users may import.

Each `choose_*` function samples its own parameters (conditional ones only when they
matter, e.g. a regularizer's strength only when there is a regularizer) and returns a
ready value. Training helpers (optimizer, schedule, batch size, loss) are in
`automl.spaces.training`.
"""

from __future__ import annotations

from collections.abc import Callable
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

    Recipes: "flip" (horizontal), "translate" (shifts of whole pixels up to 10 % of a
    side, reflected borders), "crop" (random 7/8 crops resized back to full size; Keras'
    RandomCrop passes images through uncropped at inference, so resizing keeps the
    shapes equal) and their "flip_" combinations.
    """
    import keras

    if "flip" in recipe:
        x = keras.layers.RandomFlip("horizontal")(x)
    if "translate" in recipe:
        # Whole-pixel shifts (nearest): bilinear ones at fractional offsets blur every
        # training image, and the test images are sharp. The fast recipe for 8 epochs on
        # CIFAR-10 scored 1.1 points more with flip TTA (benchmarks/RESULTS.md).
        shift = keras.layers.RandomTranslation(0.1, 0.1, "reflect", interpolation="nearest")
        x = shift(x)
    if "crop" in recipe:
        height, width = x.shape[1], x.shape[2]
        x = keras.layers.RandomCrop(max(1, height * 7 // 8), max(1, width * 7 // 8))(x)
        x = keras.layers.Resizing(height, width)(x)
    return x


def start_as_identity(conv: keras.layers.Conv2D) -> None:
    """Make a built convolution pass its input through at first (PyTorch's `dirac_`).

    Its first `inputs` filters become the identity (a 1 at the kernel's centre, from
    channel i to filter i); the others keep their initializer. airbench starts every
    3x3 convolution so: a deep stack begins near the identity and trains faster from
    the first epoch (+0.8 points with batch norm's momentum 0.4 and kernel-only decay
    after 8 epochs on CIFAR-10, benchmarks/RESULTS.md). Written into the weights after
    building, so the saved model holds no custom initializer. Left as it is where it
    has fewer filters than inputs, or an even kernel without a centre.

    Args:
        conv: A built `Conv2D` (any odd kernel size).
    """
    import keras
    import numpy as np

    kernel = keras.ops.convert_to_numpy(conv.kernel)
    rows, cols, inputs, filters = kernel.shape
    if filters < inputs or rows % 2 == 0 or cols % 2 == 0:
        return
    kernel[:, :, :, :inputs] = 0
    kernel[rows // 2, cols // 2, np.arange(inputs), np.arange(inputs)] = 1
    conv.kernel.assign(kernel)


def patch_whitening(
    x: keras.KerasTensor, spec: ModelSpec, patch_size: int = 2, *, name: str = "whiten"
) -> keras.KerasTensor:
    """A k x k "valid" convolution fitted to the training images' patch statistics.

    Fitted like `Normalization.adapt`, once per search, from `spec.image_sample` (see
    `automl.spaces.whitening`): the kernel whitens the patches, the bias centres them,
    and the layer is frozen. It is a plain `Conv2D`, so its weights are saved in the
    model and it loads without automl. When the sample is too small to estimate the
    statistics (one warning per search), it is an ordinary trainable convolution with
    the default initializer.
    """
    import keras

    filters = 2 * patch_size * patch_size * x.shape[-1]
    fitted = spec.patch_whitening(patch_size)
    layer = keras.layers.Conv2D(filters, patch_size, padding="valid", name=name)
    y = layer(x)
    if fitted is not None:
        layer.set_weights(list(fitted))
        layer.trainable = False
    return y


def output_head(
    x: keras.KerasTensor,
    spec: ModelSpec,
    initializer: str = "glorot_uniform",
    *,
    regularizer: keras.regularizers.Regularizer | None = None,
) -> keras.KerasTensor:
    """The output layer: softmax over the classes, or one linear unit for regression
    (`regularizer` on its kernel, for linear models whose only weights these are).

    A regression head predicts standardized targets and rescales them with the training
    targets' mean and std, so the network works near unit scale and the model still
    outputs raw units. The head computes in float32 whatever the global dtype policy
    (under mixed precision the softmax must not round to 16 bits).
    """
    import keras

    if spec.task == "regression":
        mean, std = spec.target_stats or (0.0, 1.0)
        x = keras.layers.Dense(
            1,
            kernel_initializer=initializer,
            kernel_regularizer=regularizer,
            name="output_standardized",
            dtype="float32",
        )(x)
        return keras.layers.Rescaling(scale=std, offset=mean, name="output", dtype="float32")(x)
    return keras.layers.Dense(
        spec.num_classes,
        activation="softmax",
        kernel_initializer=initializer,
        kernel_regularizer=regularizer,
        name="output",
        dtype="float32",
    )(x)


def with_flip_tta(model: keras.Model, *, shifts: bool = False) -> keras.Model:
    """`model` with flip test-time augmentation: the mean of its predictions on each image
    and on its left-right mirror image.

    With `shifts`, airbench's second level: half the weight on those two, half on the
    mirrored pairs of the image moved one pixel down-right and one pixel up-left, the
    borders reflected (six forward passes per prediction instead of two).

    For a trained image model, at export: built from Keras' own layers only (mirrors and
    shifts are frozen 0/1 `Dense` layers over the width or height axis, exact in floating
    point), so the result saves to `.keras` and loads in safe mode without automl, and
    takes the same raw input as `model`, uncompiled (for prediction).

    Args:
        model: A trained model on fixed-size images (N, H, W, C).
        shifts: Also average the two shifted mirrored pairs.

    Returns:
        The wrapping model.
    """
    import keras

    # The same layers as an uncompiled model: a compiled inner model would carry its loss
    # (maybe automl's smoothed one) into the saved file.
    body = keras.Model(model.inputs[0], model.outputs[0], name=model.name)
    raw = keras.Input(model.inputs[0].shape[1:], dtype=model.inputs[0].dtype, name="raw_input")
    height, width = raw.shape[1:3]
    mirror = _pixel_map(width, _mirrored, name="mirror")
    flip = keras.layers.Average(name="flip_tta")([body(raw), body(_along(raw, 2, mirror))])
    if not shifts:
        return keras.Model(raw, flip, name=f"{model.name}_flip_tta")
    views = []
    for step in (1, -1):
        down, right = _pixel_map(height, _shifted(step)), _pixel_map(width, _shifted(step))
        moved = _along(_along(raw, 1, down), 2, right)
        views += [body(moved), body(_along(moved, 2, mirror))]
    shift = keras.layers.Average(name="shift_tta")(views)
    averaged = keras.layers.Average(name="flip_shift_tta")([flip, shift])
    return keras.Model(raw, averaged, name=f"{model.name}_flip_shift_tta")


def _mirrored(index: int, size: int) -> int:
    """The source pixel of output pixel `index` in a mirror image."""
    return size - 1 - index


def _shifted(step: int) -> Callable[[int, int], int]:
    """The source pixel of each output pixel of a move by `step` pixels, the border
    reflected (as numpy's `pad(mode="reflect")`)."""

    def source(index: int, size: int) -> int:
        moved = abs(index - step)  # reflected at 0
        return moved if moved < size else 2 * (size - 1) - moved  # and at the far end

    return source


def _pixel_map(
    size: int, source: Callable[[int, int], int], *, name: str | None = None
) -> keras.layers.Dense:
    """A frozen `Dense` that moves pixels along an axis of `size`: output pixel k takes
    input pixel `source(k, size)`."""
    import keras
    import numpy as np

    matrix = np.zeros((size, size), dtype="float32")
    for index in range(size):
        matrix[source(index, size), index] = 1.0
    layer = keras.layers.Dense(size, use_bias=False, trainable=False, name=name)
    layer.build((None, size))
    layer.set_weights([matrix])
    return layer


def _along(x: keras.KerasTensor, axis: int, layer: keras.layers.Dense) -> keras.KerasTensor:
    """`layer` applied along image axis `axis` (1: height, 2: width) of `x` (N, H, W, C)."""
    import keras

    order = (1, 3, 2) if axis == 2 else (3, 2, 1)  # that axis last; its own inverse
    return keras.layers.Permute(order)(layer(keras.layers.Permute(order)(x)))
