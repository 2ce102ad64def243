"""The fast image recipe: the CIFAR-10 speed-runs' ingredients, sized for a CPU.

hlb-CIFAR10 and airbench reach 94 % on CIFAR-10 in about 10 epochs on a GPU with a
patch-whitening first convolution, conv-pool-BN-GELU stages, label smoothing, Nesterov
SGD with large batches and a warm-up then decay, weight averaging and flip TTA. Their
widths (64/256/256) cost about 118 M multiply-adds per image, 26 times the tutorial
CNN. Measured on 2 CPU cores (2026-12-01; `benchmarks/recipes.py`, RESULTS.md):

- widths 32/64/128 train at ~600-1,000 images/s, 64/128/256 at ~150, 48/96/192 ~340;
  pooling right after each stage's first convolution doubles the speed (276 -> 595);
- batch 256 (batch 512 ran slower per image, 395 vs 624; 128 as fast, twice the steps);
  XLA `jit_compile` slower (448 vs 624 images/s), so it stays off; channels-last is
  Keras' default and kept;
- probes of 4 epochs on 12,000 images (validation accuracy): Nesterov at 0.4 beat 0.2,
  0.1, 0.05 and 0.8 (0.652 vs 0.557, 0.502, 0.447, 0.625); patch whitening is most of
  the gain (0.338 without); label smoothing 0.2 added 2.7 points; weight averaging
  (EMA 0.99, into the model each epoch) cost 7.5 points, so it is a parameter of the
  space, off here; flip TTA added 1.1 points and acts at export
  (`automl.spaces.blocks.with_flip_tta`), not in training;
- translations by whole pixels, not bilinear ones that blur each training image: +1.1
  points with flip TTA after 8 epochs on the 45k split (0.848 against 0.837, 2026-12-05);
- on top of them, batch norm without a scale that follows recent batches (momentum 0.4
  in Keras' sense; airbench's is 0.6), 3x3 convolutions started as the identity (both
  from airbench) and weight decay on the kernels only: another +0.8 with flip TTA after
  8 epochs (0.856; `benchmarks/probe_ingredients.py`);
- at 15 T (14 epochs) it reached 0.849 test accuracy (0.857 with flip TTA), against
  0.713 for the modern CNN and 0.684 for the tutorial CNN at the same budget.

What lives here: the recipe as a point of the `cnn` space and `fit_recipe`, which adapts
it to small images or leaves it out, with one log line saying why.
"""

from __future__ import annotations

import logging
from typing import Any

from automl.spaces import ModelSpec

logger = logging.getLogger("automl")

FAST_RECIPE: dict[str, Any] = {
    "stem": "whiten",  # 2x2 patch whitening, frozen, fitted to the training images
    "stages": 3,
    "convs_per_stage": 2,
    "pool_first": True,  # conv, max-pool, BN, GELU, conv, BN, GELU: airbench's order
    "kernel_size": 3,
    "padding": "same",
    "filters_1": 32,
    "filters_2": 64,
    "filters_3": 128,
    "pooling": "max",
    "head": "gap",
    "activation": "gelu",
    "initializer": "he_normal",
    "regularizer": "none",
    "batch_norm": True,
    "batch_norm_momentum": 0.4,  # statistics of recent batches (airbench: 0.6), measured
    "batch_norm_scale": False,  # airbench's: the scale stays 1, only the offset learns
    "identity_init": True,  # each 3x3 convolution starts as the identity (dirac)
    "spatial_dropout": 0.0,
    "dropout": 0.0,
    "label_smoothing": 0.2,
    "augment": "flip_translate",
    "batch_size": 256,
    "optimizer": "nesterov",
    "learning_rate": 0.4,
    "momentum": 0.9,
    "weight_decay": 5e-3,
    "decay_kernels_only": True,  # batch norm's offsets and biases left undecayed
    "schedule": "warmup_cosine",
    "weight_averaging": "none",
}

# Below this side (in pixels) there is nothing left to whiten and pool.
_SMALLEST_SIDE = 4


def fit_recipe(spec: ModelSpec) -> dict[str, Any] | None:
    """`FAST_RECIPE` for `spec`'s images: fewer stages where the feature map cannot halve
    three times (8x8 digits get 2), or None for images under 4 pixels a side. Logs one
    line when it changes or drops the recipe."""
    height, width = spec.input_shape[:2]
    side = min(height, width)
    if side < _SMALLEST_SIDE:
        logger.info(
            "cnn: the fast recipe is left out for %dx%d images (it needs at least %dx%d "
            "pixels to whiten and pool)",
            height,
            width,
            _SMALLEST_SIDE,
            _SMALLEST_SIDE,
        )
        return None
    side -= 1  # the 2x2 "valid" whitening convolution
    halvings = 0
    while side >= 4 and halvings < FAST_RECIPE["stages"]:
        side, halvings = side // 2, halvings + 1
    stages = max(1, min(FAST_RECIPE["stages"], halvings + 1))
    recipe = dict(FAST_RECIPE)
    if stages < FAST_RECIPE["stages"]:
        logger.info(
            "cnn: the fast recipe uses %d stage(s) instead of %d on %dx%d images (the "
            "feature map halves only %d time(s))",
            stages,
            FAST_RECIPE["stages"],
            height,
            width,
            halvings,
        )
        recipe["stages"] = stages
        for stage in range(stages + 1, FAST_RECIPE["stages"] + 1):
            del recipe[f"filters_{stage}"]
    return recipe
