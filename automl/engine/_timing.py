"""Timing this machine before the first trial: what the plan (`_plan`) rests on.

For each family the space may choose (each `family` of `auto`, else the space itself),
its reference model (the family's first starting point, else a random point) trains a
few steps and validates a few batches here. That gives the fixed cost of a fit (tracing
the train and test functions) and the cost of a training step and a validation batch,
each as a multiple of one eager forward pass of the model: a `Speed`. The reference
point's wider point (see `_grow`) is timed the same way when the budget may hold its
long training.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import keras
import optuna

from automl._errors import UsageError
from automl.data._batches import evaluate_inputs, fit_inputs
from automl.engine._grow import GROW_LEAST_PLAN_EPOCHS, GROW_PLAN_EPOCHS
from automl.engine._phases import exploitation_keeps, explore_share
from automl.engine._trainer import batch_size_of, build_model
from automl.spaces import HyperParameters

if TYPE_CHECKING:
    from automl.data import Dataset
    from automl.data._encoding import Encoded
    from automl.objective import Objective
    from automl.spaces import ModelSpec, Space

logger = logging.getLogger("automl")

MEASURED_STEPS = 3  # timed training steps per reference model, after the traced one
# ... and for the wider point (`measure_grown`), measured only when the budget may hold
# its long training: 3 steps of the fast recipe read 40 s and 65 s per epoch in two runs
# a minute apart, and the wider long training's time is sized on this one reading.
GROWN_MEASURED_STEPS = 10
# A family whose reference model cannot train this many epochs in the whole budget is
# not measured: its estimate (one eager forward pass, scaled like the families measured
# before it) already says it cannot compete, and measuring it would cost seconds the
# budget needs (a residual CNN's tracing and steps take 10-15 s on 2 cores).
WORTH_MEASURING_EPOCHS = 3
# Measuring stops before a family whose measurement (guessed as the largest start-up
# measured so far) would take it past this share of the time to the deadline: at 16 s
# on 2 cores, a transformer's tracing (8 s) left the trials under a second.
MEASURE_MAX_SHARE = 0.25


@dataclasses.dataclass(frozen=True)
class Speed:
    """How one family trains on this machine, measured on its reference model.

    Attributes:
        family: The family (`cnn`, ...), or the space's label.
        fit_overhead_s: A fit's fixed cost: tracing its train and test functions.
        forward_s: One eager forward pass of the reference model over one batch.
        step_per_forward: A training step, in eager forward passes.
        val_per_forward: A validation batch, in eager forward passes.
        epoch_overhead_s: What an epoch costs besides its batches (callbacks, the
            validation pass's set-up).
        epoch_s: The reference model's epoch, validation included.
        batch_size: The reference model's batch size.
    """

    family: str
    fit_overhead_s: float
    forward_s: float
    step_per_forward: float
    val_per_forward: float
    epoch_overhead_s: float
    epoch_s: float
    batch_size: int = 32

    def epoch_seconds(self, forward_s: float, steps: int, val_batches: int) -> float:
        """An epoch of a model whose eager forward pass takes `forward_s`."""
        batches = steps * self.step_per_forward + val_batches * self.val_per_forward
        return forward_s * batches + self.epoch_overhead_s

    def trial_s(self, epochs: int) -> float:
        """The reference model's trial of `epochs` epochs, its start-up included."""
        return self.fit_overhead_s + epochs * self.epoch_s


@dataclasses.dataclass(frozen=True)
class Measured:
    """What `measure_families` found.

    Attributes:
        speeds: Each family's speed, in the space's order.
        too_slow: The families left unmeasured as too slow for the budget, with their
            estimated epoch.
        unmeasured: Those measuring had no time for.
        unneeded: Those not needed: nothing will be explored (the first family is
            always measured).
        grown: The first family's wider point (see `measure_grown`), or None.
    """

    speeds: dict[str, Speed]
    too_slow: dict[str, float] = dataclasses.field(default_factory=dict)
    unmeasured: tuple[str, ...] = ()
    unneeded: tuple[str, ...] = ()
    grown: Speed | None = None


def measure_families(
    space: Space,
    data: Dataset,
    spec: ModelSpec,
    objective: Objective,
    seed: int | None,
    deadline: float,
    *,
    grows: bool = True,
    finish_share: float = 0.0,
) -> Measured:
    """Each family's speed, and with `grows` the first one's wider point (measured right
    after it: where its long training takes the whole budget, nothing is explored and
    the other families need no measuring; at 165 T on CIFAR-10 they cost about 15 s).
    `finish_share`: the most of the time to `deadline` the plan may keep for the finish
    (so the trials' budget lies between that less it and all of it)."""
    speeds: dict[str, Speed] = {}
    too_slow: dict[str, float] = {}
    unmeasured: list[str] = []
    unneeded: list[str] = []
    grown = None
    started = time.monotonic()
    allowed_s = MEASURE_MAX_SHARE * max(0.0, deadline - started)
    for index, (family, point) in enumerate(reference_points(space, spec).items()):
        # A lower bound on what measuring the next family costs: its own tracing is
        # unknown, and families come cheapest first, so the largest seen so far.
        guess_s = max((s.fit_overhead_s for s in speeds.values()), default=0.0)
        if speeds and time.monotonic() - started + guess_s > allowed_s:
            unmeasured.append(family)
            continue
        first = next(iter(speeds.values()), None)
        if first and _only_first_trains(first, grown, spec, deadline, finish_share):
            unneeded.append(family)
            continue
        screen = _Screen(next(iter(speeds.values())), deadline) if speeds else None
        try:
            speeds[family] = _measure(space, data, spec, objective, family, point, seed, screen)
        except _TooSlow as slow:
            too_slow[family] = slow.epoch_s
            logger.info("plan: %s is too slow for this budget (≈ %.0f s/epoch)", *slow.args)
        except (UsageError, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - the trials report it with its reason
            logger.warning("plan: could not measure %s here (%s)", family, exc)
        # Only the first starting point's: it is the one that trains long at once.
        if grows and index == 0 and family in speeds:
            grown = measure_grown(space, data, spec, objective, speeds, seed, deadline)
    return Measured(speeds, too_slow, tuple(unmeasured), tuple(unneeded), grown)


def grown_seconds(grown: Speed | None) -> tuple[float, float]:
    """The wider long training's seconds a split keeps at most, and at least (see
    `_phases.make_split`); zeros without a wider point."""
    if grown is None:
        return 0.0, 0.0
    return grown.trial_s(GROW_PLAN_EPOCHS), grown.trial_s(GROW_LEAST_PLAN_EPOCHS)


def _only_first_trains(
    first: Speed,
    grown: Speed | None,
    spec: ModelSpec,
    deadline: float,
    finish_share: float = 0.0,
) -> bool:
    """Whether the time to `deadline` leaves nothing to explore: it holds the first
    family's trial, but no more than what exploitation keeps for its long training
    (`_phases.exploitation_keeps`: its full trainings, or its wider point's). At 55 T
    on CIFAR-10, measuring `auto`'s two other families cost about 20 s of 730. A budget
    too small for the first family's trial still measures the others: the smallest
    budget that works is the quickest family's.

    Asked of the time left with and without the finish's share (`finish_share`): the
    wider long training is kept only where the budget holds its least, so a budget a
    little smaller may keep only the full trainings, and explore."""
    left = deadline - time.monotonic()
    full_s = first.trial_s(spec.max_epochs)
    for trials_s in (left, (1 - finish_share) * left):
        kept_s, _ = exploitation_keeps(trials_s, full_s, *grown_seconds(grown))
        if trials_s < first.trial_s(1) or explore_share(trials_s, kept_s) > 0:
            return False
    return True


def measure_grown(
    space: Space,
    data: Dataset,
    spec: ModelSpec,
    objective: Objective,
    speeds: dict[str, Speed],
    seed: int | None,
    deadline: float,
) -> Speed | None:
    """The speed of the first family's reference point's wider point (see `_grow`),
    measured like a reference and labelled with that family; None when nothing was
    measured, that point has no wider one, it fails to train, or the time to the
    deadline cannot hold `GROW_LEAST_PLAN_EPOCHS` of its epochs (`_Screen`): first asked
    of the reference's own epoch, before anything is built, then of the wider point's
    estimate, before it is timed (its epoch is about twice the reference's, and timing
    it costs 15 s on 2 cores)."""
    family = next(iter(speeds), None)
    wider = reference_wider_point(space, spec, family) if family else None
    if family is None or wider is None:
        return None
    screen = _Screen(speeds[family], deadline, epochs=GROW_LEAST_PLAN_EPOCHS)
    if not screen.holds(speeds[family].epoch_s):  # not even the reference's epochs
        return None
    label = f"{family}'s wider point"
    try:
        speed = _measure(
            space, data, spec, objective, label, wider, seed, screen, GROWN_MEASURED_STEPS
        )
    except _TooSlow as slow:
        logger.info(
            "plan: %s is not timed: %d of its epochs (≈ %.0f s each as estimated) would "
            "not fit before the deadline; a long training that may grow "
            "estimates it like a trial",
            label,
            GROW_LEAST_PLAN_EPOCHS,
            slow.epoch_s,
        )
        return None
    except (UsageError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - long trainings then train as explored
        logger.warning("plan: could not measure %s here (%s)", label, exc)
        return None
    return dataclasses.replace(speed, family=family)


def reference_points(space: Space, spec: ModelSpec) -> dict[str, dict[str, Any]]:
    """Per family, the point whose model is measured: its first starting point, else
    just the family (the rest sampled at random)."""
    points: dict[str, dict[str, Any]] = {}
    for point in space.starting_points(spec):
        points.setdefault(str(point.get("family", space.label)), point)
    return points or {space.label: {}}


def reference_wider_point(space: Space, spec: ModelSpec, family: str) -> dict[str, Any] | None:
    """The wider point (see `_grow`) of `family`'s reference point: what the plan times
    as its `grown` speed; None when that point has none."""
    point = reference_points(space, spec).get(family)
    return space.grown(point, spec) if point else None


def is_reference_wider_point(
    space: Space, spec: ModelSpec, family: str, point: dict[str, Any]
) -> bool:
    """Whether `point` is `family`'s `reference_wider_point`, whose costs the plan
    measured before any trial ran: it holds each of that point's values (a built
    model's values may hold more, such as a space's fixed ones)."""
    measured = reference_wider_point(space, spec, family)
    return measured is not None and all(point.get(k) == v for k, v in measured.items())


@dataclasses.dataclass(frozen=True)
class _Screen:
    """Estimates a model's epoch from its eager forward pass, scaled like `like` (a
    family measured before it), so that one too slow for the budget is not measured.

    Attributes:
        like: The speed that scales the estimate.
        deadline: The plan's deadline (monotonic seconds).
        epochs: The epochs that must fit for a measurement to be worth its seconds.
    """

    like: Speed
    deadline: float
    epochs: int = WORTH_MEASURING_EPOCHS

    def holds(self, epoch_s: float) -> bool:
        """Whether `epochs` epochs of `epoch_s` and a fit's start-up fit before the
        deadline."""
        left = self.deadline - time.monotonic()
        return self.like.fit_overhead_s + self.epochs * epoch_s <= left

    def check(self, family: str, forward_s: float, steps: int, val_batches: int) -> None:
        """Raise `_TooSlow` when the estimated epoch does not fit (see `holds`)."""
        epoch_s = self.like.epoch_seconds(forward_s, steps, val_batches)
        if not self.holds(epoch_s):
            raise _TooSlow(family, epoch_s)


class _TooSlow(Exception):
    """A family's estimated epoch is too long for the budget: (family, epoch_s)."""

    @property
    def epoch_s(self) -> float:
        return float(self.args[1])


def _measure(
    space: Space,
    data: Dataset,
    spec: ModelSpec,
    objective: Objective,
    family: str,
    point: dict[str, Any],
    seed: int | None,
    screen: _Screen | None = None,
    steps: int = MEASURED_STEPS,
) -> Speed:
    """Time the reference model of one family: tracing, `steps` training steps after
    the traced one, validation likewise.

    Raises:
        _TooSlow: `screen` estimates the family too slow for the budget.
    """
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    if point:
        study.enqueue_trial(point)
    hp = HyperParameters(study.ask(), space.overrides)
    encoded = data.encode(hp)
    try:
        model = build_model(space, hp, _spec_for(spec, encoded), objective)
        batch = batch_size_of(hp)
        train, val = _batches(encoded, data, batch, steps)
        forward_s = forward_seconds(model, rows_of(train[0], batch))
        per_epoch = spec.steps_per_epoch(batch)
        val_batches = max(1, math.ceil(len(data.y_val) / batch))
        if screen is not None:
            screen.check(family, forward_s, per_epoch, val_batches)

        def fit(n: int) -> None:
            x, y = rows_of(train[0], n * batch), train[1][: n * batch]
            model.fit(**fit_inputs(x, y, batch, shuffle=True), epochs=1, verbose=0)

        def evaluate(n: int) -> None:
            x, y = rows_of(val[0], n * batch), val[1][: n * batch]
            model.evaluate(**evaluate_inputs(x, y, batch), verbose=0)

        tracing, per_fit, step_s = _marginal(fit, len(train[1]) // batch, steps)
        val_tracing, per_evaluate, val_s = _marginal(evaluate, len(val[1]) // batch, steps)
    finally:
        keras.utils.clear_session(free_memory=False)
    speed = Speed(
        family=family,
        fit_overhead_s=tracing + val_tracing,
        forward_s=forward_s,
        step_per_forward=step_s / forward_s,
        val_per_forward=val_s / forward_s,
        epoch_overhead_s=per_fit + per_evaluate,
        epoch_s=per_epoch * step_s + val_batches * val_s + per_fit + per_evaluate,
        batch_size=batch,
    )
    logger.info("plan: %s trains at %.3f s/epoch here", family, speed.epoch_s)
    return speed


def forward_seconds(model: keras.Model, x: Any) -> float:
    """One eager forward pass over `x`, after one that builds what is lazy."""
    model(x, training=False)
    started = time.perf_counter()
    model(x, training=False)
    return max(time.perf_counter() - started, 1e-6)


def _marginal(run: Callable[[int], None], available: int, steps: int) -> tuple[float, float, float]:
    """Time `run(n)` (n batches in one Keras call): (tracing, per-call cost, per-batch
    cost). The first call traces; a 1-batch and a (1 + `steps`)-batch call then
    separate what a call costs whatever its length from what each batch adds."""
    extra = max(1, min(steps, available - 1))
    first = _seconds_of(lambda: run(1))
    one = _seconds_of(lambda: run(1))
    many = _seconds_of(lambda: run(1 + extra))
    per_batch = max((many - one) / extra, 1e-6)
    per_call = max(0.0, one - per_batch)
    return max(0.0, first - one), per_call, per_batch


def _seconds_of(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _batches(
    encoded: Encoded, data: Dataset, batch: int, steps: int
) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """A few batches of training and validation rows, model-ready."""
    rows = batch * (steps + 1)
    x_train, x_val = rows_of(encoded.x_train, rows), rows_of(encoded.x_val, rows)
    if encoded.stream is not None:  # file paths: decode just these rows
        x_train = _decoded(encoded, x_train, data.y_train[:rows], batch)
        x_val = _decoded(encoded, x_val, data.y_val[:rows], batch)
    return (x_train, data.y_train[:rows]), (x_val, data.y_val[:rows])


def rows_of(x: Any, rows: int | slice) -> Any:
    """The first `rows` rows (or a slice of them): arrays, or dicts of columns (tables)."""
    cut = slice(0, rows) if isinstance(rows, int) else rows
    if isinstance(x, dict):
        return {key: column[cut] for key, column in x.items()}
    return x[cut]


def _decoded(encoded: Encoded, paths: Any, y: Any, batch: int) -> Any:
    import numpy as np

    stream = encoded.stream(paths, y, batch)
    return np.concatenate([stream[i][0] for i in range(len(stream))])


def _spec_for(spec: ModelSpec, encoded: Encoded) -> ModelSpec:
    vocab_size = encoded.vocab_size or spec.vocab_size
    return dataclasses.replace(spec, input_shape=encoded.input_shape, vocab_size=vocab_size)
