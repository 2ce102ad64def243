"""`transfer`: a `keras.applications` backbone with a new head, frozen or fine-tuned.

Varies the backbone (MobileNetV2, MobileNetV3-Small, EfficientNetB0, ResNet50V2,
DenseNet121), the size images are resized to (32-128 px), how much of the backbone is
fine-tuned (none, or its top quarter, half or all, batch norm always frozen), the head
(an optional dense layer, dropout), label smoothing, augmentation, optimizer, learning
rate (a head-only range for a frozen backbone, a lower one for fine-tuning), schedule and
batch size.

The model takes raw pixels (0-255): augmentation, resizing, grayscale-to-RGB and each
backbone's own input scaling are layers inside it, all serializable (no Lambda layers),
so the exported model loads safely and needs no preprocessing outside.

Weights come from the `weights` parameter, fixed to "imagenet" unless a space config
says otherwise:

- "imagenet": the application's ImageNet file without its top, read from the Keras
  cache (`$KERAS_HOME/models`, by default `~/.keras/models`). Nothing is downloaded: a
  missing file stops the search with a `UsageError` that names it and the fixes.
- a path: a local `.h5` / `.weights.h5` file, loaded as the application's `weights=`
  argument loads it.
- "none": random initialization, training from scratch (only when asked for). Nothing is
  pretrained then, so the whole backbone trains, batch norm included, `fine_tune` is not
  sampled, and the learning rate takes the usual `learning_rate` range.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np

from automl._errors import UsageError
from automl.spaces import HyperParameters, ModelSpec
from automl.spaces.blocks import augment, choose_augmentation, choose_dropout, output_head
from automl.spaces.training import choose_training

DESCRIPTION = "a keras.applications backbone with a new head; frozen or fine-tuned layers"
KINDS = ("image",)
TASKS = ("classification", "regression")
ORDER = 60

# ImageNet statistics of the "torch" preprocessing mode (DenseNet, EfficientNet).
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
# Input sizes MobileNetV2 has ImageNet files for; its convolutions fit any input size.
_MOBILENET_V2_SIZES = (224, 96, 128, 160, 192)


@dataclasses.dataclass(frozen=True)
class Backbone:
    """One backbone the space offers.

    Attributes:
        application: The `keras.applications` constructor's name.
        weight_files: ImageNet no-top file names in the Keras cache, preferred first.
        scaling: Input scaling the ImageNet weights expect: "tf" ([-1, 1]), "torch"
            ([0, 1] then ImageNet mean/std per channel) or "builtin" (the application
            scales raw 0-255 pixels itself).
        kwargs: Extra constructor arguments.
    """

    application: str
    weight_files: tuple[str, ...]
    scaling: str
    kwargs: tuple[tuple[str, object], ...] = ()


BACKBONES = {
    "mobilenet_v2": Backbone(
        "MobileNetV2",
        tuple(
            f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5"
            for size in _MOBILENET_V2_SIZES
        ),
        "tf",
    ),
    "mobilenet_v3_small": Backbone(
        "MobileNetV3Small",
        ("weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",),
        "builtin",
        (("include_preprocessing", True),),
    ),
    "efficientnet_b0": Backbone("EfficientNetB0", ("efficientnetb0_notop.h5",), "builtin"),
    # ResNet50V2 scales to [-1, 1] like MobileNet. ResNet50 (v1) would need Caffe's BGR
    # mean subtraction, i.e. a Lambda layer, which safe model loading refuses.
    "resnet50_v2": Backbone(
        "ResNet50V2", ("resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",), "tf"
    ),
    "densenet121": Backbone(
        "DenseNet121", ("densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",), "torch"
    ),
}
IMAGE_SIZES = (32, 64, 96, 128)  # keras.applications need at least 32x32
FINE_TUNE_FRACTIONS = (0.0, 0.25, 0.5, 1.0)
OPTIMIZERS = ("adam", "adamw", "momentum", "nesterov", "rmsprop")

MOBILENET_FROZEN = {
    "backbone": "mobilenet_v2",
    "image_size": 96,
    "fine_tune": 0.0,
    "head_dense": False,
    "dropout": 0.2,
    "label_smoothing": 0.0,
    "augment": "flip",
    "batch_size": 64,
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "schedule": "constant",
}

STARTING_POINTS = [MOBILENET_FROZEN]


def starting_points(spec: ModelSpec) -> list[dict[str, Any]]:
    """Fresh copies of `STARTING_POINTS`: the same recipe for every image set."""
    return [dict(point) for point in STARTING_POINTS]


def build(hp: HyperParameters, spec: ModelSpec) -> keras.Model:
    """Build and compile one backbone + head model.

    Varies the backbone, the input size, the fine-tuned fraction of the backbone, the
    head (optional dense layer, dropout), label smoothing, augmentation, optimizer, the
    learning rate that acts (head-only or fine-tuning), schedule and batch size.

    Raises:
        UsageError: When the weights asked for are not on this machine.
    """
    name = hp.Choice("backbone", list(BACKBONES))
    size = hp.Choice("image_size", list(IMAGE_SIZES))
    weights = hp.Fixed("weights", "imagenet")
    from_scratch = str(weights).lower() == "none"
    # Freezing random layers only hurts: from scratch, everything trains.
    fine_tune = 1.0 if from_scratch else hp.Choice("fine_tune", list(FINE_TUNE_FRACTIONS))
    head_dense = hp.Boolean("head_dense")
    with hp.conditional_scope("head_dense", True):
        head_units = hp.Choice("head_units", [128, 256, 512])
    dropout = choose_dropout(hp)
    recipe = choose_augmentation(hp)
    # A frozen backbone trains only the head, which takes the usual rates (as does a
    # network trained from scratch); fine-tuning pretrained layers needs rates 10-100x
    # lower or it wipes out what they learned.
    usual = fine_tune == 0.0 or from_scratch
    compile_model = choose_training(
        hp,
        spec,
        choices=OPTIMIZERS,
        learning_rate=(1e-4, 1e-2) if usual else (1e-5, 1e-3),
        learning_rate_name="learning_rate" if usual else "fine_tune_learning_rate",
    )

    backbone_info = BACKBONES[name]
    weights_path = _resolve_weights(name, size, weights)  # before any building: fail fast
    imagenet = str(weights).lower() == "imagenet"
    backbone = _backbone(backbone_info, size, weights_path, imagenet=imagenet)
    if not from_scratch:
        _set_trainable(backbone, fine_tune)

    inputs = keras.Input(spec.input_shape, name="raw_input")  # raw 0-255 pixels
    x = augment(inputs, recipe)  # before resizing: crops then still reach the full size
    x = keras.layers.Resizing(size, size, name="resize")(x)
    x = _to_rgb(x)
    x = _scaling_layer(backbone_info.scaling)(x) if backbone_info.scaling != "builtin" else x
    # training=False keeps batch norm on its pretrained statistics even while fine-tuning;
    # from scratch there are none, so batch norm learns as usual.
    x = backbone(x) if from_scratch else backbone(x, training=False)
    if head_dense:
        x = keras.layers.Dense(head_units, activation="relu", name="head_dense")(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    model = keras.Model(inputs, output_head(x, spec), name="transfer")
    return compile_model(model)


def backbones_available() -> list[str]:
    """Backbones whose ImageNet no-top weights are in the Keras cache."""
    return [name for name in BACKBONES if _cached_weights(name, IMAGE_SIZES[0]) is not None]


def keras_cache_dirs() -> list[Path]:
    """Where Keras keeps downloaded weights: `$KERAS_HOME/models` (default `~/.keras`), and
    `/tmp/.keras/models` when that home is not writable, as `keras.utils.get_file` does."""
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()
    folders = [home / "models"]
    if home.exists() and not os.access(home, os.W_OK):
        folders.append(Path(tempfile.gettempdir()) / ".keras" / "models")
    return folders


def _weight_files(name: str, size: int) -> list[str]:
    files = list(BACKBONES[name].weight_files)
    if name == "mobilenet_v2":  # the file trained at this input size first, if there is one
        preferred = [f for f in files if f.endswith(f"_{size}_no_top.h5")]
        files = preferred + [f for f in files if f not in preferred]
    return files


def _cached_weights(name: str, size: int) -> Path | None:
    for file_name in _weight_files(name, size):
        for folder in keras_cache_dirs():
            if (folder / file_name).is_file():
                return folder / file_name
    return None


def _resolve_weights(name: str, size: int, weights: str) -> Path | None:
    """The weights file to load (None for random initialization)."""
    if str(weights).lower() == "none":
        return None
    if str(weights).lower() == "imagenet":
        found = _cached_weights(name, size)
        if found is None:
            file_name = _weight_files(name, size)[0]
            folder = keras_cache_dirs()[0]
            cached = backbones_available()
            narrow = f", or narrow backbone to the cached {cached}" if cached else ""
            raise UsageError(
                f"ImageNet weights for backbone {name!r} not found: {file_name} is not in "
                f"{folder} (no download is attempted); put the file there, give "
                f'weights = "/path/{file_name}" in a space config{narrow}, or '
                'weights = "none" to train from scratch.'
            )
        return found
    path = Path(weights).expanduser()
    if not path.is_file():
        raise UsageError(
            f"weights file {str(path)!r} for backbone {name!r} not found; give an existing "
            f'.h5 / .weights.h5 file, weights = "imagenet" for the Keras cache, or '
            'weights = "none" to train from scratch.'
        )
    return path


def _backbone(info: Backbone, size: int, weights: Path | None, *, imagenet: bool) -> keras.Model:
    """The application without its top, average-pooled, with `weights` loaded."""
    # Files are passed by path, never as "imagenet": Keras would download what it misses.
    backbone = getattr(keras.applications, info.application)(
        include_top=False,
        weights=None if weights is None else str(weights),
        input_shape=(size, size, 3),
        pooling="avg",
        name="backbone",
        **dict(info.kwargs),
    )
    if imagenet and info.application.startswith("EfficientNet"):
        _imagenet_normalization(backbone)
    return backbone


def _imagenet_normalization(backbone: keras.Model) -> None:
    """Make EfficientNet's input Normalization compute (x/255 - mean) / std.

    Its ImageNet file stores the std where the variance belongs, so with
    weights="imagenet" Keras adds a correcting Rescaling layer (tensorflow issue 49930),
    which a backbone loaded by path lacks. Setting the layer's statistics gives the same
    result with the graph as built.
    """
    norm = next(la for la in backbone.layers if isinstance(la, keras.layers.Normalization))
    norm.adapt_mean.assign(np.asarray(_IMAGENET_MEAN, "float32"))
    norm.adapt_variance.assign(np.square(np.asarray(_IMAGENET_STD, "float32")))
    norm.finalize_state()


def _set_trainable(backbone: keras.Model, fraction: float) -> None:
    """Unfreeze the top `fraction` of the backbone's layers, batch norm excepted."""
    if fraction <= 0:
        backbone.trainable = False
        return
    backbone.trainable = True
    first = len(backbone.layers) - int(round(fraction * len(backbone.layers)))
    for index, layer in enumerate(backbone.layers):
        layer.trainable = index >= first and not isinstance(layer, keras.layers.BatchNormalization)


def _to_rgb(x: keras.KerasTensor) -> keras.KerasTensor:
    """Three channels: grayscale repeated, other channel counts mixed by a fixed 1x1 conv."""
    channels = x.shape[-1]
    if channels == 3:
        return x
    if channels == 1:
        return keras.layers.Concatenate(name="gray_to_rgb")([x, x, x])
    # Average every channel into each of R, G and B: a frozen, saved 1x1 convolution.
    mix = keras.layers.Conv2D(3, 1, use_bias=False, trainable=False, name="to_rgb")
    mix.build(x.shape)
    mix.set_weights([np.full((1, 1, channels, 3), 1.0 / channels, "float32")])
    return mix(x)


def _scaling_layer(scaling: str) -> keras.layers.Layer:
    """The input scaling the backbone's ImageNet weights were trained with."""
    if scaling == "tf":
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale_to_pm1")
    mean, std = np.asarray(_IMAGENET_MEAN), np.asarray(_IMAGENET_STD)
    return keras.layers.Rescaling(
        scale=[float(s) for s in 1.0 / (255.0 * std)],
        offset=[float(o) for o in -mean / std],
        name="imagenet_standardize",
    )
