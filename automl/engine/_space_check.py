"""Catch a broken space early: before any training, and after the first few trials.

`check_space` builds a few models from random points of the space in a throwaway
in-memory study (keras-tuner likewise builds once to learn its space): wrong ranges and
config names that match no parameter surface as `UsageError` before the first epoch.
`stop_if_space_is_broken` ends a search whose first trials all failed in the space
itself, naming the most common reason.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import Any

import keras
import optuna

from automl._errors import UsageError
from automl.record import TrialRecord
from automl.spaces import HyperParameters, ModelSpec, Space

logger = logging.getLogger("automl")

DRY_BUILDS = 3
FIRST_TRIALS = 3


def check_space(
    space: Space,
    spec: ModelSpec,
    seed: int | None,
    *,
    choose: Callable[[HyperParameters], Any] | None = None,
) -> None:
    """Build up to `DRY_BUILDS` random models; check every config name was used.

    `choose` samples the data's own search dimensions (an encoder's `choose`, e.g. the
    text vocabulary size), so config names for them count as used.

    Exceptions other than `UsageError` are left for the trials to report (as FAIL with
    a reason), so a space that fails only sometimes still runs.

    Raises:
        UsageError: On invalid ranges, or config params the space never asks for.
    """
    sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(sampler=sampler)
    requested: set[str] = set()
    built = 0
    try:
        for point in space.starting_points(spec)[:1] + [{}] * DRY_BUILDS:
            if point:
                study.enqueue_trial(point)
            hp = HyperParameters(study.ask(), space.overrides)
            if choose is not None:
                choose(hp)
            try:
                space.build(hp, spec)
                built += 1
            except UsageError:
                raise
            except Exception as exc:  # noqa: BLE001 - the trials will report it
                logger.debug("dry build failed: %s", exc)
            requested |= hp.requested
    finally:
        keras.utils.clear_session(free_memory=True)
    unknown = sorted(set(space.overrides) - requested)
    if built and unknown:
        raise UsageError(
            f"space config names {', '.join(map(repr, unknown))}, which space "
            f"{space.label!r} never asks for; known names: {', '.join(sorted(requested))}."
        )


def stop_if_space_is_broken(study: optuna.Study) -> None:
    """Raise when the study's first `FIRST_TRIALS` trials all failed in the space.

    Raises:
        UsageError: Naming the most common failure reason and where to look.
    """
    trials = study.get_trials(deepcopy=False)
    if len(trials) != FIRST_TRIALS:
        return
    facts = [TrialRecord.read(t) for t in trials]
    if not all(f.space_failed for f in facts):
        return
    reasons = collections.Counter(f.reason for f in facts)
    reason, _ = reasons.most_common(1)[0]
    raise UsageError(
        f"the first {FIRST_TRIALS} trials all failed in the space itself, so the search "
        f"stopped; likely mistake: {reason} Check the space's build function."
    )
