"""Plan, the phase between setup and the trials: measure this machine, fit trials to time.

Budgets are seconds, models train in epochs, and machines differ by 2x or more, so the
plan measures before the first trial: each family's reference model trains a few steps
here (`_timing`), which gives its `Speed`.

With a deadline, each trial is then planned to fit the time left: a trial's eager
forward pass, scaled by its family's multiples, estimates its epoch, and the trial gets
as many epochs (up to `max_epochs`) as fit before the deadline. Its learning-rate
schedule is built for those epochs, so the deadline never cuts a schedule in the middle.
Without a deadline the budget is `trials` x `max_epochs` and every trial gets the cap.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from typing import TYPE_CHECKING, Any

import keras
import optuna

from automl._errors import UsageError
from automl.engine import _timing
from automl.engine._phases import (
    EXPLORE_SPARE,
    RANKING_EPOCHS,
    Split,
    Window,
    make_split,
    seconds_text,
)
from automl.engine._resolution import every_family_downsamples, exploration_downsample
from automl.engine._timing import (
    Measured,
    Speed,
    forward_seconds,
    grown_seconds,
    is_reference_wider_point,
    measure_families,
    reference_points,
    rows_of,
)
from automl.record import TrialRecord

if TYPE_CHECKING:
    from automl.data import Dataset
    from automl.data._encoding import Encoded
    from automl.objective import Objective
    from automl.spaces import ModelSpec, Space


# The finish (see `_finish`) runs inside the budget: trials end early by what it is
# estimated to cost here. The validation passes of the ensemble's candidates (the
# number a search usually keeps; `KEPT` at most) and, for images, of flip TTA (two
# views) and flip and shift TTA (six), two passes over the test split (the export's
# score and its check; an image export may take six views, so four more), then a fixed
# part: saving, loading and the MLflow report (3-5 s on 2 cores).
FINISH_VAL_PASSES = 3
FINISH_TTA_PASSES = 8
FINISH_TEST_PASSES = 2
FINISH_TTA_TEST_PASSES = 4
FINISH_FIXED_S = 5.0
FINISH_MAX_SHARE = 0.1  # of the budget: a tiny budget's trials need it more
# A trial that holds one epoch before the deadline starts only with this much to spare
# on its estimate: at 55 T the modern CNN's trial began with about 100 s left and ended
# 47 s past the deadline (after a cut, Keras still validates, and the model is kept),
# the search 5.5 % over its budget.
LAST_EPOCH_SPARE = 1.5


@dataclasses.dataclass(frozen=True)
class Plan:
    """What this process measured, and how it fits trials to the time.

    Attributes:
        speeds: Per family (empty when no reference model could be measured: then every
            trial gets the cap, and the deadline stops what runs over).
        max_epochs: The epoch cap of every trial.
        deadline: `time.monotonic()` at which the trials' time ends (the budget's end
            less `finish_s`), or None.
        measure_s: What measuring cost (it comes out of the budget).
        budget_s: Seconds left for trials when the plan was made (None: no deadline).
        finish_s: Seconds kept after the trials for the finish (see `finish_seconds`).
        split: Exploration then exploitation (see `_phases`), or None: every trial fitted
            to the time left.
        too_slow: Families left unmeasured, with their estimated epoch in seconds: fewer
            than `_timing.WORTH_MEASURING_EPOCHS` of them fit the budget. Their trials are
            planned like the first family measured, so they are pruned before training
            whenever they do not fit the time left.
        explore_downsample: Exploration trials see images this many times smaller per
            side (see `_resolution`); 1: full size.
        unmeasured: Families left unmeasured because measuring them would have taken
            measuring past `_timing.MEASURE_MAX_SHARE` of the budget; planned like
            `too_slow`.
        unneeded: Families left unmeasured because the budget holds no more than what
            exploitation keeps for the first family's reference (its
            `EXPLOIT_KEEPS_FULL_TRAININGS` full trainings, or its wider long training),
            so nothing is explored (see `_phases.make_split`): that one trains long, and
            measuring the others would only cost time. Planned like `too_slow`.
        adopted: A worker's copy of the search's first process's plan (see
            `_shared_plan`), not measured by this process.
        grown: The first family's reference point's wider point (see `_grow`),
            measured like a reference when the budget may hold its long training; it
            estimates wider models' epochs (an eager forward pass scaled like the
            smaller reference under-estimated a wider CNN's epoch by about half).
    """

    speeds: dict[str, Speed]
    max_epochs: int
    deadline: float | None
    measure_s: float
    budget_s: float | None
    split: Split | None = None
    too_slow: dict[str, float] = dataclasses.field(default_factory=dict)
    finish_s: float = 0.0
    explore_downsample: int = 1
    unmeasured: tuple[str, ...] = ()
    unneeded: tuple[str, ...] = ()
    adopted: bool = False
    grown: Speed | None = None

    @property
    def fits_to_time(self) -> bool:
        """Whether trials are planned to the time left (a deadline, and a measurement)."""
        return self.deadline is not None and bool(self.speeds)

    def speed_of(self, params: dict[str, Any], grown: bool = False) -> Speed | None:
        """The speed of the family a trial's params choose (the only one, or `auto`'s
        `family` param); None when nothing was measured. `grown`: the params are a
        wider point (see `_grow`), whose costs scale like the family's measured wider
        reference when the plan has one."""
        family = params.get("family")
        speed = self.speeds.get(family) or next(iter(self.speeds.values()), None)
        if grown and speed is not None and self.grown and self.grown.family == speed.family:
            return self.grown
        return speed

    def epochs_for(
        self,
        speed: Speed | None,
        epoch_s: float,
        *,
        until: float | None = None,
        cap: int | None = None,
        now: float | None = None,
    ) -> int:
        """Epochs a trial whose epoch takes `epoch_s` gets: the cap (default
        `max_epochs`), or as many as fit before `until` (default: the deadline; 0: not
        even one, or one that would end at the deadline without `LAST_EPOCH_SPARE`)."""
        cap = self.max_epochs if cap is None else cap
        until = self.deadline if until is None else until
        if until is None or speed is None:
            return cap
        left = until - (time.monotonic() if now is None else now) - speed.fit_overhead_s
        fitting = math.floor(left / max(epoch_s, 1e-6))
        at_deadline = self.deadline is not None and until >= self.deadline
        if fitting == 1 and at_deadline and left < LAST_EPOCH_SPARE * epoch_s:
            return 0  # cut by the deadline, it would still validate and save after it
        return max(0, min(cap, fitting))

    def epochs_in(
        self,
        window: Window | None,
        speed: Speed | None,
        epoch_s: float,
        *,
        cap: int | None = None,
        now: float | None = None,
    ) -> int:
        """Epochs a trial whose epoch takes `epoch_s` gets in its `window` (None: up to
        the deadline; see `epochs_for`): an exploration trial's fit its window at
        `EXPLORE_SPARE` times `epoch_s` (`Window.spare`), since a cut one ranks its
        configuration low."""
        if window is None:
            return self.epochs_for(speed, epoch_s, cap=cap, now=now)
        return self.epochs_for(speed, epoch_s * window.spare, until=window.until, cap=cap, now=now)

    def calibration(
        self, trials: list[optuna.trial.FrozenTrial], family: str, downsample: int = 1
    ) -> float:
        """How much slower (> 1) or faster than estimated this family's finished trials
        at the same resolution ran: the median ratio of their seconds per epoch to the
        estimate, in [0.2, 5].

        Estimates scale a trial's eager forward pass, which misses how its cost differs
        from the reference model's in ways a forward pass does not show; the trials that
        ran say by how much. Small images leave fixed costs a larger share of an epoch,
        so trials at another resolution count only while none ran at this one.
        """
        speed = self.speeds.get(family) or next(iter(self.speeds.values()), None)
        overhead = speed.fit_overhead_s if speed else 0.0
        ratios: dict[bool, list[float]] = {True: [], False: []}  # same resolution or not
        for trial in trials:
            facts = TrialRecord.read(trial)
            if not (trial.state.is_finished() and facts.estimated_epoch_s and facts.epochs):
                continue
            if facts.grown:  # a wider model, estimated from another reference
                continue
            ran_as = self.speed_of(trial.params)
            if facts.seconds is None or ran_as is None or ran_as.family != family:
                continue
            same = (facts.downsample or 1) == downsample
            ratios[same].append(_over_estimate(facts, overhead))
        # The other resolution's trials, when none ran at this one: better than nothing
        # (a long training planned from the bare estimate may be cut by the deadline).
        found = ratios[True] or ratios[False]
        return min(5.0, max(0.2, statistics.median(found))) if found else 1.0

    def own_calibration(
        self, explored: optuna.trial.FrozenTrial | None, downsample: int = 1
    ) -> float | None:
        """How much slower (> 1) or faster than estimated one finished trial at
        `downsample` ran, in [0.2, 5]; None for none, or one at another resolution."""
        facts = TrialRecord.read(explored) if explored is not None else TrialRecord()
        if explored is None or not explored.state.is_finished() or facts.seconds is None:
            return None
        if not (facts.estimated_epoch_s and facts.epochs) or (facts.downsample or 1) != downsample:
            return None
        speed = self.speed_of(explored.params)
        return min(5.0, max(0.2, _over_estimate(facts, speed.fit_overhead_s if speed else 0.0)))

    def wider_basis(
        self,
        space: Space,
        spec: ModelSpec,
        speed: Speed,
        values: dict[str, Any],
        explored: optuna.trial.FrozenTrial | None,
    ) -> tuple[float | None, optuna.trial.FrozenTrial | None]:
        """What a wider point's epoch estimate (`epoch_estimate`'s `forward_s` and
        `explored`) rests on, for the grower and the long training alike: for the
        plan's own measured wider point (`values`, a built model's, are its), the
        forward pass timed before any trial ran, since timed again it may share the
        cores with a worker's trial (after a handover for memory), which can double it
        and refuse a growth that fits; for another, `explored`, its configuration's
        exploration trial. (None, None) where `speed` is not the measured wider one."""
        if self.grown is None or speed is not self.grown:
            return None, None
        if is_reference_wider_point(space, spec, speed.family, values):
            return speed.forward_s, None
        return None, explored

    def epoch_estimate(
        self,
        speed: Speed,
        model: keras.Model,
        encoded: Encoded,
        spec: ModelSpec,
        batch: int,
        n_val: int,
        trials: list[optuna.trial.FrozenTrial],
        forward_s: float | None = None,
        explored: optuna.trial.FrozenTrial | None = None,
    ) -> tuple[float, float]:
        """A model's epoch in seconds (training at `batch`, then validating `n_val`
        rows), as estimated from one eager forward pass (`forward_s` when already known,
        else timed now on `model`) scaled by its family's measured costs, and as
        calibrated on the family's finished `trials` (see `calibration`).

        A wider model's estimate scales the measured wider reference (`grown`), which
        the trials' ratios (from the family's own reference) say nothing about: they
        may lengthen its epoch, never shorten it. At 165 T they once shortened a grown
        epoch measured at 66 s to 55 s; it ran at 67 s, so its schedule, built for 26
        epochs, was squeezed into 21 once it ran (`ScheduleToTime`). An epoch planned
        long costs little: the same callback stretches a schedule whose epochs run
        faster than planned. The wider point of another configuration than the one
        measured is calibrated on `explored`, its configuration's own trial, where that
        ran at the same resolution: the wider reference's costs misjudge it as the
        family's costs misjudged its smaller self (at 165 T a tutorial CNN's trial ran
        at 0.43 times its estimate, and its wider model at 0.53 times)."""
        if forward_s is None:  # streamed images: the reference's, for the pixels it sees
            forward_s = (
                speed.forward_s / spec.downsample**2
                if encoded.stream
                else forward_seconds(model, rows_of(encoded.x_train, batch))
            )
        val_batches = max(1, -(-n_val // batch))
        estimate = speed.epoch_seconds(forward_s, spec.steps_per_epoch(batch), val_batches)
        calibrated = estimate * self.calibration(trials, speed.family, spec.downsample)
        if self.grown is not None and speed is self.grown:
            own = self.own_calibration(explored, spec.downsample)
            calibrated = max(estimate, calibrated) if own is None else estimate * own
        return estimate, calibrated

    def shortest_trial_s(self) -> float:
        """The quickest family's fit overhead and one epoch: the least a trial needs."""
        return min((s.trial_s(1) for s in self.speeds.values()), default=0.0)

    def full_trial_s(self) -> float:
        """The first family's reference model trained for `max_epochs`, start-up included."""
        return self._reference_trial_s(self.max_epochs)

    def ranking_trial_s(self) -> float:
        """The least exploration trial: the first family's reference model trained for
        `RANKING_EPOCHS` with `EXPLORE_SPARE` on each, start-up included, and half an
        epoch more for what a trial does between its window's start and its plan
        (building and sizing its model), so that the reference gets them all (0: none
        measured)."""
        speed = next(iter(self.speeds.values()), None)
        if speed is None:
            return 0.0
        return speed.fit_overhead_s + (RANKING_EPOCHS + 0.5) * EXPLORE_SPARE * speed.epoch_s

    def _reference_trial_s(self, epochs: int) -> float:
        """The first family's reference model's trial of `epochs` (0: none measured)."""
        speed = next(iter(self.speeds.values()), None)
        return 0.0 if speed is None else speed.trial_s(epochs)

    def out_of_time(self) -> bool:
        """Whether the time left is too short for the quickest trial, its one epoch with
        `LAST_EPOCH_SPARE` (never without a deadline and a measurement)."""
        if not self.fits_to_time or self.deadline is None:
            return False
        least = min(
            (s.fit_overhead_s + LAST_EPOCH_SPARE * s.epoch_s for s in self.speeds.values()),
            default=0.0,
        )
        return self.deadline - time.monotonic() < least

    def describe(self) -> str:
        """One line for people: what an epoch costs here and how trials are fitted."""
        epochs = ", ".join(
            f"{s.family} {seconds_text(s.epoch_s)}/epoch (+{seconds_text(s.fit_overhead_s)} once)"
            for s in self.speeds.values()
        )
        if not self.speeds:
            return f"every trial trains up to {self.max_epochs} epochs (no time limit to fit)"
        if self.grown is not None:
            epochs += f", its wider point {seconds_text(self.grown.epoch_s)}/epoch"
        if self.too_slow:
            slow = ", ".join(
                f"{family} ≈ {seconds_text(s)}/epoch" for family, s in self.too_slow.items()
            )
            epochs += f"; too slow for this budget, not measured: {slow}"
        if self.unmeasured:  # the share as measuring reads it (tests patch it there)
            epochs += (
                f"; not measured, to keep measuring under {_timing.MEASURE_MAX_SHARE:.0%} of the "
                f"budget: {', '.join(self.unmeasured)}"
            )
        if self.unneeded:
            epochs += (
                "; not measured, since the budget holds only the first starting point's "
                f"long training: {', '.join(self.unneeded)}"
            )
        where = "measured here"
        if self.adopted:
            where = "measured by the search's first process on this host"
        if self.budget_s is None:
            return f"{where}: {epochs}; every trial trains up to {self.max_epochs} epochs"
        if self.split is not None:
            described = f"{where}: {epochs}; {self.split.describe(self.max_epochs)}"
            if self.explore_downsample > 1:
                described += (
                    f"; the short trials see images {self.explore_downsample}x smaller per "
                    "side, the long ones full size"
                )
            return described
        return (
            f"{where}: {epochs}; {seconds_text(self.budget_s)} left for trials, each "
            f"planned for the epochs (up to {self.max_epochs}) that fit the time left, its "
            f"schedule with them; {seconds_text(self.finish_s)} kept for the finish"
        )

    def as_dict(self) -> dict[str, Any]:
        """For summary.json and MLflow."""
        return {
            "description": self.describe(),
            "measure_s": round(self.measure_s, 2),
            "budget_s": None if self.budget_s is None else round(self.budget_s, 1),
            "finish_s": round(self.finish_s, 1),
            "max_epochs": self.max_epochs,
            "epoch_s": {name: round(s.epoch_s, 3) for name, s in self.speeds.items()},
            "fit_overhead_s": {name: round(s.fit_overhead_s, 3) for name, s in self.speeds.items()},
            "split": None if self.split is None else self.split.as_dict(),
            "too_slow_epoch_s": {name: round(s, 1) for name, s in self.too_slow.items()},
            "unmeasured": list(self.unmeasured),
            "unneeded": list(self.unneeded),
            "explore_downsample": self.explore_downsample,
        }


def make_plan(
    space: Space,
    data: Dataset,
    spec: ModelSpec,
    objective: Objective,
    *,
    seed: int | None,
    deadline: float | None,
    timeout: float | str | None,
    refuse: bool = True,
    finishes: bool = True,
    constrained: bool = False,
) -> Plan:
    """Measure every family's reference model, then check that one trial fits.

    With `refuse` (the process that creates the study, not a worker), a deadline that
    leaves no time for the quickest trial is a usage error. With `finishes` (again not a
    worker), the trials end early enough for the finish to fit the budget. `constrained`
    (size or latency limits or objectives) keeps exploration at full resolution, and
    makes a budget too small to explore trials fitted to the time left, not one long
    training of the first starting point; so does a space without starting points.

    A reference model that cannot be built or trained is left out (its trials will
    report why); its family's trials are then planned like the first family measured.
    So is one that an estimate shows too slow for the budget
    (`_timing.WORTH_MEASURING_EPOCHS`), one that measuring has no time left for
    (`_timing.MEASURE_MAX_SHARE`), and every family after the first when the budget is
    too small to explore (`Plan.unneeded`).

    Raises:
        UsageError: The deadline leaves no time for the quickest trial, naming the
            smallest budget that works here.
    """
    started = time.monotonic()
    # Without a deadline nothing is fitted to time: measuring would only cost time. The
    # wider long training's time (see `_phases.make_split`) is counted as measuring.
    measured = (
        measure_families(
            space,
            data,
            spec,
            objective,
            seed,
            deadline,
            grows=not constrained,
            finish_share=FINISH_MAX_SHARE if finishes else 0.0,
        )
        if deadline is not None
        else Measured({})
    )
    speeds, grown = measured.speeds, measured.grown
    now = time.monotonic()
    first = next(iter(speeds.values()), None)
    finish = 0.0
    if finishes and deadline is not None and first is not None:
        # The model that reaches the finish may be the grown one, about twice the
        # reference's forward cost: at 165 T on CIFAR-10 an estimate at the reference's
        # speed left too little time for shift TTA (benchmarks/RESULTS.md).
        at_finish = grown if grown is not None else first
        finish = min(finish_seconds(at_finish, data), FINISH_MAX_SHARE * max(0.0, deadline - now))
        deadline -= finish
    plan = Plan(
        speeds=speeds,
        max_epochs=spec.max_epochs,
        deadline=deadline,
        measure_s=now - started,
        budget_s=None if deadline is None else max(0.0, deadline - now),
        too_slow=measured.too_slow,
        finish_s=finish,
        unmeasured=measured.unmeasured,
        unneeded=measured.unneeded,
        grown=grown,
    )
    if plan.budget_s is not None and deadline is not None:
        grown_s, least_s = grown_seconds(grown)
        split = make_split(
            plan.budget_s,
            plan.shortest_trial_s(),
            plan.full_trial_s(),
            deadline,
            grown_s,
            least_s,
            ranking_s=plan.ranking_trial_s(),
        )
        one_long = split is not None and not split.explores
        if one_long and (constrained or not space.starting_points(spec)):
            # Constrained: one long training could break a limit, or make a front of one.
            # No starting point: it would train one random point long (digits at 20 s:
            # 0.936 test, where a plain Optuna loop's five trials scored 0.958-0.964).
            split = None
        explores = split is not None and split.explores
        factor = exploration_downsample(spec, split=explores, constrained=constrained)
        points = {f: p for f, p in reference_points(space, spec).items() if f in speeds}
        if factor > 1 and not every_family_downsamples(space, spec, objective, points, factor):
            factor = 1
        plan = dataclasses.replace(plan, split=split, explore_downsample=factor)
    if refuse and plan.budget_s is not None and plan.budget_s < plan.shortest_trial_s():
        _refuse(plan, float(timeout or 0.0))
    return plan


def finish_seconds(speed: Speed, data: Dataset) -> float:
    """What the finish is estimated to cost here: validation and test passes of models
    like the reference one, and a fixed part (see `FINISH_VAL_PASSES`)."""
    batch_s = speed.val_per_forward * speed.forward_s
    val_batches = math.ceil(len(data.y_val) / speed.batch_size)
    test_batches = math.ceil(len(data.y_test) / speed.batch_size)
    image = data.kind == "image"
    passes = FINISH_VAL_PASSES + (FINISH_TTA_PASSES if image else 0)
    test_passes = FINISH_TEST_PASSES + (FINISH_TTA_TEST_PASSES if image else 0)
    return FINISH_FIXED_S + batch_s * (passes * val_batches + test_passes * test_batches)


def _over_estimate(facts: TrialRecord, overhead_s: float) -> float:
    """A finished trial's seconds per epoch (less its fit's `overhead_s`) over its
    estimated epoch (its `seconds`, `epochs` and `estimated_epoch_s` known)."""
    actual = max(float(facts.seconds or 0.0) - overhead_s, 0.0) / (facts.epochs or 1)
    return actual / float(facts.estimated_epoch_s or 1.0)


def _refuse(plan: Plan, timeout: float) -> None:
    """The one-line refusal of a budget too small for one trial."""
    needed = plan.shortest_trial_s()
    budget = plan.budget_s or 0.0
    smallest = (timeout - budget) + needed  # setup and measuring, then the quickest trial
    raise UsageError(
        f"{{timeout}} leaves {seconds_text(budget)} for trials after setup and measuring, but the "
        f"quickest trial here needs about {seconds_text(needed)} (one epoch and its start-up); "
        f"pass a {{timeout}} of {_suggest(1.2 * smallest)} or more."
    )


def _suggest(seconds: float) -> str:
    """A round budget at least `seconds` long, as the flag takes it."""
    if seconds <= 60:
        return f"{math.ceil(seconds / 10) * 10}s"
    return f"{math.ceil(seconds / 60)}m"
