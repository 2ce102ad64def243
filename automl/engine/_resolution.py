"""Exploration at lower resolution: image trials may explore on images averaged down.

Off by default (`AUTOML_EXPLORE_DOWNSAMPLE=1`); `AUTOML_EXPLORE_DOWNSAMPLE=2` turns it
on. Measured at 55 T on CIFAR-10 (one seed, benchmarks/RESULTS.md), it ran 6 complete
exploration trials where full size ran 3, but at 16x16 a plain CNN without early pooling
edged out the fast recipe (0.658 against 0.648 validation), and at full size that
configuration is about twice as slow per epoch, so its long training got 6 epochs and the
search scored 0.772 test against 0.842. Architectures that pool early (the fast ones)
lose more at low resolution: a bias, not only noise. Until the long trainings are chosen
for the accuracy their time buys at full size, full size stays the default.

On CIFAR-10, configurations trained on 16x16 images rank like the same configurations
trained at full size (Spearman 0.99, 90 % interval 0.90-1.00, over 9 configurations of
the `cnn` space) at about a third of the cost (`benchmarks/fidelity.py`, in
benchmarks/RESULTS.md). So when a search explores and then exploits (a split, see
`_phases`), its exploration trials build their model for images `factor` times smaller
per side, behind an average pooling of the raw images (`ModelSpec.downsampled`): about
three times as many configurations are tried in the same time, and each still takes the
raw full-size images, so it can be kept, ensembled and exported like any other. The long
trainings of the best configurations (`exploit`) and every trial of a search without a
split train at full size.

Left at full size: images whose smaller side would drop under `MIN_SIDE` pixels,
searches with size or latency limits or cost objectives (a model's footprint at low
resolution is not the one it would have at full size), and searches where a family's
reference model cannot be built for the small images or makes its own `keras.Input`
instead of `spec.inputs()` (`transfer`, many users' spaces): exploration scores at two
resolutions would not compare. A single point that cannot be built small (a rare deep
configuration) trains at full size and records no `downsample`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import keras
import optuna

from automl._errors import UsageError
from automl.engine._trainer import build_model
from automl.settings import explore_downsample
from automl.spaces import HyperParameters

if TYPE_CHECKING:
    from automl.objective import Objective
    from automl.spaces import ModelSpec, Space

logger = logging.getLogger("automl")

MIN_SIDE = 16  # pixels: smaller images lose what a CIFAR-size model needs to see


def exploration_downsample(spec: ModelSpec, *, split: bool, constrained: bool) -> int:
    """The factor exploration trials average images down by (1: full size).

    Args:
        spec: The study's spec.
        split: The plan explores, then exploits (otherwise every trial is final).
        constrained: The search limits or optimizes a model's size or latency.
    """
    factor = explore_downsample()
    if factor == 1 or not split or constrained or spec.kind != "image":
        return 1
    height, width = spec.input_shape[:2]
    if height % factor or width % factor or min(height, width) // factor < MIN_SIDE:
        return 1
    return factor


def takes_raw_images(model: keras.Model, spec: ModelSpec) -> bool:
    """Whether a model built for `spec` (a `downsampled` one) takes the full-size raw
    images through `spec.inputs()`'s average pooling (a space that makes its own
    `keras.Input` builds for the small images, or skips the pooling)."""
    height, width, *channels = spec.input_shape
    factor = spec.downsample
    if len(model.inputs) != 1 or "explore_downsample" not in {x.name for x in model.layers}:
        return False
    return tuple(model.inputs[0].shape[1:]) == (height * factor, width * factor, *channels)


def every_family_downsamples(
    space: Space,
    spec: ModelSpec,
    objective: Objective,
    points: dict[str, dict[str, Any]],
    factor: int,
) -> bool:
    """Whether each family's reference point (`points`, by family) builds for
    `spec.downsampled(factor)` and takes the raw images through its pooling; logs the
    first family that does not."""
    small = spec.downsampled(factor)
    for family, point in points.items():
        study = optuna.create_study()
        if point:
            study.enqueue_trial(point)
        hp = HyperParameters(study.ask(), space.overrides)
        try:
            fits = takes_raw_images(build_model(space, hp, small, objective), small)
        except UsageError:
            raise
        except Exception:  # noqa: BLE001 - any failure means: explore at full size
            fits = False
        finally:
            keras.utils.clear_session(free_memory=False)
        if not fits:
            logger.info("plan: %s cannot explore on smaller images; all trials full size", family)
            return False
    return True
