"""Grow a long training: train a wider model of the chosen configuration when its time
holds enough of that model's epochs.

The CIFAR-10 speed-runs spend a longer budget on width, not only on epochs, and so does
a long training here. Measured on 2 CPU cores (benchmarks/RESULTS.md, "Recipe width at
165 T"): with the same 1885 s, the fast recipe at 32/128/256 filters trained 24 epochs
and scored 0.872 test, against 0.858 after 51 epochs at 32/64/128; with 1000 s, 12
epochs at 32/128/256 scored 0.861 (0.866 with flip TTA) against 0.845 (0.858) at
32/64/128 ("Recipe width at 1000 s"). Fewer epochs are unmeasured, so a long training
grows only when at least `GROW_MIN_EPOCHS` of the wider model's epochs fit its time
(`GROW_LEAST_PLAN_EPOCHS` as estimated, a fifth to spare).
The wider point comes from the space (its `grow`, see `automl.spaces.Space.grown`);
spaces without one never grow. Searches with size or latency limits, or several
objectives, never grow either: a wider model costs more of what they weigh.

The wider model's epoch is estimated from ten timed steps, which this shared machine
makes noisy: at 165 T one timed on three steps at 55 s ran 92 s, so it got 12 of its 26
planned epochs. So a grown training checks its pace after its first epoch (`GrownPace`), and
when fewer than `GROW_MIN_EPOCHS` of its epochs fit, its configuration trains as
explored in its place: one epoch lost, where the rest of the long training would have
been.

What lives here: `Grower`, which the study's own process calls as it enqueues the long
trainings (`_phases.start_exploiting`), and `GrownPace`, on the grown training.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import TYPE_CHECKING, Any

import keras
import optuna

from automl._errors import UsageError
from automl.engine._phases import exploit_epoch_cap, train_as_explored
from automl.engine._trainer import batch_size_of, build_model
from automl.record import TrialRecord
from automl.spaces import HyperParameters

if TYPE_CHECKING:
    from automl.data import Dataset
    from automl.engine._limits import Limits
    from automl.engine._plan import Plan
    from automl.objective import Objective
    from automl.spaces import ModelSpec, Space

logger = logging.getLogger("automl")

GROW_MIN_EPOCHS = 12  # the fewest epochs of the wider model measured to pay (see above)
# A split keeps time for `GROW_PLAN_EPOCHS` of the wider model's epochs where the budget
# holds them, and for as many as it holds down to `GROW_LEAST_PLAN_EPOCHS`, a fifth
# over `GROW_MIN_EPOCHS`, so that epochs a little slower than estimated still leave the
# minimum (`_phases.make_split`); a long training
# grows when its estimate holds that many (`Grower`), and its first epoch shows whether
# the minimum fits (`GrownPace`). 40, not the 24 first measured: in four CIFAR-10
# searches of 1650-3500 s exploring never found a configuration better than the one that
# grows, whose 24 epochs in 3456 s (0.887 with flip TTA) only matched its narrow self
# trained for the whole budget, and the recipe still gains at 64 epochs; exploration
# gets only the time beyond them (see `_phases`).
GROW_PLAN_EPOCHS = 40
GROW_LEAST_PLAN_EPOCHS = 15


@dataclasses.dataclass(frozen=True)
class Grower:
    """Decides whether a long training trains its configuration's wider point.

    Attributes:
        space: The search's space (its `grown` gives the wider point).
        data: The dataset, to encode the wider point's inputs.
        spec: The study's spec, full size (long trainings see full-size images).
        plan: What an epoch costs here (`Plan.epoch_estimate`).
        objective: The metric trials are scored on (compiles an uncompiled model).
    """

    space: Space
    data: Dataset
    spec: ModelSpec
    plan: Plan
    objective: Objective

    def __call__(
        self,
        params: dict[str, Any],
        seconds: float,
        explored: optuna.trial.FrozenTrial | None,
        trials: list[optuna.trial.FrozenTrial],
    ) -> dict[str, Any] | None:
        """The wider point of `params` to train for `seconds`, or None: the space has
        none, the plan cannot estimate it, or fewer than `GROW_LEAST_PLAN_EPOCHS` of
        its epochs fit the time (its epoch estimated like a trial's, calibrated on
        `trials`, see `_wider_epoch`) or the long training's epoch cap (set by
        `explored`, its configuration's exploration trial, see `exploit_epoch_cap`)."""
        found = self._wider_epoch(params, trials, explored)
        if found is None or not _within(found[0], explored):
            return None
        wider, epoch_s, fit_overhead_s = found
        record = TrialRecord.read(explored) if explored is not None else TrialRecord()
        cap = exploit_epoch_cap(record, self.plan.max_epochs, self.plan.split)
        fitting = math.floor((seconds - fit_overhead_s) / max(epoch_s, 1e-6))
        epochs = min(cap, fitting)
        changed = ", ".join(
            f"{k} {params.get(k)} -> {v}" for k, v in wider.items() if params.get(k) != v
        )
        if epochs < GROW_LEAST_PLAN_EPOCHS:  # the minimum and a fifth, see `GrownPace`
            logger.info(
                "grow: not %s: %d of its ~%.0f s epochs fit %.0f s (cap %d), under %d",
                changed, epochs, epoch_s, seconds, cap, GROW_LEAST_PLAN_EPOCHS,
            )  # fmt: skip
            return None
        logger.info(
            "grow: the long training trains %s (%d of its ~%.0f s epochs fit %.0f s)",
            changed, epochs, epoch_s, seconds,
        )  # fmt: skip
        return wider

    def _wider_epoch(
        self,
        params: dict[str, Any],
        trials: list[optuna.trial.FrozenTrial],
        explored: optuna.trial.FrozenTrial | None,
    ) -> tuple[dict[str, Any], float, float] | None:
        """`params`' wider point, its epoch in seconds (estimated like a trial's, from
        the plan's measured wider reference when it has one, and calibrated on
        `trials`, or on `explored` where it is another configuration's, see
        `Plan.wider_basis`) and its fit's start-up; None when the space has no wider
        point, the plan measured nothing, or the point does not build."""
        wider = self.space.grown(params, self.spec)
        speed = None if wider is None else self.plan.speed_of(wider, grown=True)
        if wider is None or speed is None:
            return None
        keras.utils.clear_session(free_memory=False)
        hp = HyperParameters(optuna.trial.FixedTrial(wider), self.space.overrides)
        try:
            encoded = self.data.encode(hp)
            if encoded.stream is not None:  # decoded on the fly: the estimate would
                return None  # take the reference's forward pass, not the wider model's
            model = build_model(self.space, hp, self.spec, self.objective)  # sets hp's values
            batch, n_val = batch_size_of(hp), len(self.data.y_val)
            # The built model's values: they hold what the space's config fixes, as the
            # plan's reference point does (the params alone do not).
            known, own = self.plan.wider_basis(self.space, self.spec, speed, hp.values, explored)
            _, epoch_s = self.plan.epoch_estimate(
                speed, model, encoded, self.spec, batch, n_val, trials, forward_s=known,
                explored=own,
            )  # fmt: skip
        except (UsageError, KeyboardInterrupt):
            raise
        except Exception as exc:  # e.g. out of memory: it trains as explored instead
            logger.info("grow: the wider point does not build (%s); it trains as explored", exc)
            return None
        finally:
            keras.utils.clear_session(free_memory=False)
        return wider, epoch_s, speed.fit_overhead_s


class GrownPace(keras.callbacks.Callback):
    """Stops a grown long training after its first epoch when fewer than
    `GROW_MIN_EPOCHS` of its epochs fit its time at that epoch's pace, and enqueues its
    configuration as explored to train in its place (`_phases.train_as_explored`);
    not when it stops anyway (deadline, Ctrl-C) or not one more epoch fits.

    Args:
        trial: The grown long training (`TrialRecord.grown_from` set).
        until: `time.monotonic()` at which its time ends.
        fit_overhead_s: What the first epoch costs once (tracing), left out of its pace.
    """

    def __init__(self, trial: optuna.Trial, until: float, fit_overhead_s: float) -> None:
        super().__init__()
        self.trial, self.until, self.fit_overhead_s = trial, until, fit_overhead_s
        self.started = 0.0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if epoch != 0 or self.model.stop_training:  # stopped anyway: deadline, Ctrl-C
            return
        now = time.monotonic()
        pace = max(now - self.started - self.fit_overhead_s, 1e-6)
        fitting = 1 + max(0, math.floor((self.until - now) / pace))
        if fitting >= GROW_MIN_EPOCHS or self.until - now < pace:  # or nothing else fits
            return
        train_as_explored(self.trial.study, self.trial)
        raise optuna.TrialPruned(
            f"grown too slow: its epoch took {pace:.0f} s, so {fitting} epochs fit its "
            f"time, under {GROW_MIN_EPOCHS}; its configuration trains as explored instead"
        )


def grower_for(
    space: Space, data: Dataset, spec: ModelSpec, plan: Plan, objective: Objective, limits: Limits
) -> Grower | None:
    """The search's `Grower`, or None when size, latency or a second objective weigh
    against a wider model (`--max-params`, `--max-latency-ms`, cost objectives)."""
    if limits.active or objective.multi:
        return None
    return Grower(space, data, spec, plan, objective)


def _within(wider: dict[str, Any], explored: optuna.trial.FrozenTrial | None) -> bool:
    """Whether each of `wider`'s values lies in the study's distribution of that param
    (a space's own `grow` may step outside; Optuna would only warn)."""
    if explored is None:
        return True
    for name, value in wider.items():
        distribution = explored.distributions.get(name)
        try:
            if distribution is not None and not distribution._contains(
                distribution.to_internal_repr(value)
            ):
                raise ValueError(value)
        except ValueError:
            logger.info("grow: %s = %r lies outside the study's range; not grown", name, value)
            return False
    return True
