"""Explore, then exploit: how a deadline's time is split between many short trials and
a few long ones.

With a budget of at least `MIN_SPLIT_TRIALS` of the quickest trial, the time after
measuring is split in two. Exploration gets up to half of it, but only the time beyond
`EXPLOIT_KEEPS_FULL_TRAININGS` full trainings of the reference model (the most a long
training may run, see below): below that every second of exploration is taken from
the one long training that decides the result, as Hyperband's most exploitative
bracket trains its configurations at the maximum resource without a first round. On
CIFAR-10 at 55 T (3.6 full trainings of the fast recipe) exploring for a third of the
time cost the long training 4 of its 14 epochs and 4 points of test accuracy. A budget
that holds no more is all exploitation: the first starting point (the reference model
the plan measured), or a resumed study's best configuration, trains long at once.
Exploration: trials capped at `Split.explore_trial_s` each
(about `EXPLORE_TRIALS` of them; Optuna's pruner stops the weak ones early), each
planned for the epochs that fit its cap with `EXPLORE_SPARE`, its schedule with them.
Exploitation: once exploration's time is up, the best `Split.exploit_n` distinct
configurations are enqueued again (`TrialRecord.exploit`) and each trains for an equal
share of the time left, never pruned. A second configuration trains long only when
exploration scored it within `SECOND_EXPLOIT_GAP` of the best: a clearly weaker one
would not join the final ensemble, so its share goes to the best. A long training is
capped at `EXPLOIT_EPOCH_FACTOR` times the epoch cap when its exploration trial trained
every one of `max_epochs`, and by its time alone when that trial was cut short by its
time cap (it never showed how many epochs it can use: CIFAR-10's fast recipe still gains
at 64).
A long training whose time holds enough epochs of a wider model of its configuration
trains that model instead (`_grow`). When the first starting point has a wider point
and the budget holds enough of its epochs, exploitation keeps that time (`Split.grows`;
up to `GROW_PLAN_EPOCHS` of the wider model, down to the least worth it) for one long
training (two where each holds it), and exploration gets only what lies beyond, as
with the full trainings above: at 165 T on CIFAR-10 exploring never found a better
configuration than the fast recipe in nine searches, its wider model scored 1.4 points
more in the same time, and the fifth of the time exploration kept took most of that
back: the search led the recipe alone by 0.2 to 0.65 points, and by 1.5 without
exploring (benchmarks/RESULTS.md).
The finish (ensemble, export, test) has its own time after the trials' deadline (see
`_plan`).

A smaller budget is all exploration, each trial fitted to the time left.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from typing import Any

import optuna

from automl.objective import score
from automl.record import TrialRecord, ranked_complete

MAX_EXPLORE_SHARE = 0.5  # of the trials' time; the rest trains the best configs long
EXPLORE_TRIALS = 6  # exploration trials the cap aims at, at least (pruned ones cost less)
MIN_SPLIT_TRIALS = 8  # a split needs room for this many of the quickest trial
TWO_EXPLOITS_TRIALS = 40  # ... and this many for two long trainings instead of one
EXPLOIT_EPOCH_FACTOR = 4  # a long training may run this many times `max_epochs`
# Exploitation keeps the time of this many full trainings of the reference model: all
# the epochs a long training may run. Exploration gets only what lies beyond.
EXPLOIT_KEEPS_FULL_TRAININGS = EXPLOIT_EPOCH_FACTOR
UNCAPPED_EPOCHS = 1_000_000  # the epoch cap of a long training that its time alone limits
SECOND_EXPLOIT_GAP = 0.02  # a second long training: scored within 2 % of the best
# An exploration trial holds at least this many epochs of the reference model: at 165 T
# on CIFAR-10, trials of 58 s gave the fast recipe one epoch (0.633) and a sampled CNN
# two, which outscored it and took the long training; with 3.5 min (5 epochs, 0.80) the
# recipe led. Fewer, longer exploration trials rank configurations for a long training.
RANKING_EPOCHS = 3
# An exploration trial is planned for the epochs that fit its window at this many times
# its estimated epoch, and the least cap holds the reference's `RANKING_EPOCHS` so
# planned (`Plan.ranking_trial_s`): at 165 T the fast recipe's trial was planned for 3
# epochs of 30 s within 96 s, ran its first in 35 s, was squeezed to 2 (0.596) and lost
# exploration to the tutorial CNN. Epochs that run faster stretch the schedule back
# (`ScheduleToTime`).
EXPLORE_SPARE = 1.1

_WAITING = optuna.trial.TrialState.WAITING
_COMPLETE = optuna.trial.TrialState.COMPLETE


@dataclasses.dataclass(frozen=True)
class Split:
    """When exploration ends and what exploitation trains.

    Attributes:
        exploit_from: `time.monotonic()` at which exploration's time is up.
        explore_s: Exploration's seconds (0: the budget is all exploitation).
        explore_trial_s: The most an exploration trial is planned to take (without
            exploration: a full training, for a study with nothing to train long).
        explore_trials: About how many exploration trials fit (fewer epochs than
            `max_epochs` fit the cap, or `max_epochs` do).
        exploit_n: How many of the best configurations train long.
        exploit_s: Exploitation's seconds, shared equally by its trainings.
        run: This search's token on the long trainings it enqueues, so that a resumed
            study splits its new budget again (earlier runs' trainings are not its own).
        grows: Exploitation keeps the time for one long training of the first
            starting point's wider point (see `_grow`), not just its full trainings.
    """

    exploit_from: float
    explore_s: float
    explore_trial_s: float
    explore_trials: int
    exploit_n: int
    exploit_s: float
    run: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex[:12])
    grows: bool = False

    @property
    def explores(self) -> bool:
        """Whether the budget has time to explore before the long training."""
        return self.explore_s > 0

    def describe(self, max_epochs: int) -> str:
        """For people: "≈ 6 short trials of ≤ 40 s, then the best trained for ≈ 3 min in
        all (...)"."""
        cap = f"up to {max_epochs * EXPLOIT_EPOCH_FACTOR} epochs"
        if self.grows:
            cap = "as many epochs as fit"
        if not self.explores:
            holds = f"under {EXPLOIT_KEEPS_FULL_TRAININGS} full trainings of"
            if self.grows:
                holds = "no more than the long training, wider, of"
            return (
                f"no short trials, since the budget holds {holds} the first starting point: "
                f"it (or a resumed study's best configuration) trains for "
                f"≈ {seconds_text(self.exploit_s)}, {cap}"
            )
        best = "the best" if self.exploit_n == 1 else f"the best {self.exploit_n}"
        if self.exploit_n > 1:
            best += f" (the second if within {SECOND_EXPLOIT_GAP:.0%} of the best)"
        if self.grows:
            best += ", wider where its time holds enough epochs of the wider model,"
            cap += " in its time"
        else:
            cap += f", or as many as fit if exploring cut it short of {max_epochs}"
        return (
            f"≈ {self.explore_trials} short trials of ≤ {seconds_text(self.explore_trial_s)}, then "
            f"{best} trained for ≈ {seconds_text(self.exploit_s)} in all (each {cap})"
        )

    def as_dict(self) -> dict[str, Any]:
        """For summary.json and MLflow."""
        facts = dataclasses.asdict(self)
        del facts["exploit_from"]  # a clock reading of this process: meaningless elsewhere
        run, grows = facts.pop("run"), facts.pop("grows")
        return {
            **{key: round(value, 1) for key, value in facts.items()},
            "run": run,
            "grows": grows,
        }

    def window(self, trial: optuna.Trial, deadline: float, now: float | None = None) -> Window:
        """Until when this trial may train, and what sets that limit."""
        now = time.monotonic() if now is None else now
        study = trial.study
        end = deadline
        record = TrialRecord.read(trial)
        if record.exploit and record.exploit_run != self.run:
            # An earlier, interrupted search's long training: this search explores first
            # and enqueues its own.
            return Window(now, "stale")
        if record.exploit:
            waiting = sum(1 for t in _exploits(study, record.exploit_run) if t.state == _WAITING)
            return Window(now + (end - now) / (waiting + 1), "exploit")
        if exploiting(study, self.run):
            if long_trainings_waiting(study, self.run):
                return Window(now, "exploit")  # a long training waits: this one not now
            return Window(end, "deadline")  # the long trainings are done: time for more
        # Nothing complete to exploit (yet, or past exploration's end): explore on, rather
        # than prune one trial after another until exploration's time is up.
        nothing = not study.get_trials(deepcopy=False, states=(_COMPLETE,))
        explore_end = end if nothing or now >= self.exploit_from else self.exploit_from
        if now + self.explore_trial_s < explore_end:
            return Window(now + self.explore_trial_s, "cap")
        return Window(explore_end, "exploration" if explore_end < end else "deadline")


@dataclasses.dataclass(frozen=True)
class Window:
    """Until when a trial may train (`time.monotonic()`), and what sets that limit:
    "cap" (an exploration trial's), "exploration" (its end), "exploit" (a long
    training's share, or a long training waiting to run), "stale" (a long training an
    earlier search enqueued and did not run), "deadline"."""

    until: float
    limit: str

    @property
    def spare(self) -> float:
        """How many times its estimated epoch a trial in it is planned at:
        `EXPLORE_SPARE` in an exploration trial's window (its cap, or exploration's
        end), else 1."""
        return EXPLORE_SPARE if self.limit in ("cap", "exploration") else 1.0


def make_split(
    budget_s: float,
    quickest_s: float,
    full_s: float,
    deadline: float,
    grown_s: float = 0.0,
    grown_least_s: float | None = None,
    ranking_s: float = 0.0,
) -> Split | None:
    """The split of `budget_s` (seconds after measuring, up to `deadline`), or None when
    it is too small to explore and then exploit.

    Args:
        budget_s: Seconds for trials.
        quickest_s: The quickest trial: its start-up and one epoch.
        full_s: The reference model's trial at `max_epochs` epochs.
        deadline: `time.monotonic()` at which the budget ends.
        grown_s: The long training of the reference's wider point that exploitation
            keeps when it can (see `_grow`); 0: none.
        grown_least_s: The least of it that is worth keeping, where the budget holds
            less than `grown_s` (None: `grown_s`).
        ranking_s: The least exploration trial: the reference's `RANKING_EPOCHS` with
            `EXPLORE_SPARE`, its start-up included (0: only the quickest trial's bound).
    """
    if quickest_s <= 0 or budget_s < MIN_SPLIT_TRIALS * quickest_s:
        return None
    trials_s = budget_s
    kept_s, grows = exploitation_keeps(trials_s, full_s, grown_s, grown_least_s)
    explore_s = explore_share(trials_s, kept_s) * trials_s
    least_cap = max(1.5 * quickest_s, ranking_s)
    if explore_s < least_cap:  # not even one exploration trial: all exploitation
        explore_s = 0.0
    cap = max(explore_s / EXPLORE_TRIALS, least_cap)
    if full_s > 0:  # no trial needs more than its full training (planned with the
        # spare, or it would plan fewer than `max_epochs` and lose its long training's
        # epoch cap, see `exploit_epoch_cap`); without exploring, one runs before the
        # long one
        cap = min(cap, EXPLORE_SPARE * full_s) if explore_s else full_s
    two = explore_s > 0 and budget_s >= TWO_EXPLOITS_TRIALS * quickest_s
    if grows:  # two long trainings only where each still holds the wider one
        two = two and trials_s - explore_s >= 2 * grown_s
    return Split(
        exploit_from=deadline - (trials_s - explore_s),
        explore_s=explore_s,
        explore_trial_s=cap,
        explore_trials=round(explore_s / cap),
        exploit_n=2 if two else 1,
        exploit_s=trials_s - explore_s,
        grows=grows,
    )


def exploitation_keeps(
    trials_s: float, full_s: float, grown_s: float = 0.0, grown_least_s: float | None = None
) -> tuple[float, bool]:
    """The seconds of `trials_s` exploitation keeps before exploration gets any, and
    whether for a wider long training: `EXPLOIT_KEEPS_FULL_TRAININGS` of `full_s`, or
    up to `grown_s` where the budget holds `grown_least_s` (see `make_split`)."""
    kept_s = EXPLOIT_KEEPS_FULL_TRAININGS * full_s
    least_s = grown_s if grown_least_s is None else grown_least_s
    grows = 0 < least_s <= trials_s
    if grows:
        kept_s = max(kept_s, min(grown_s, trials_s))
    return kept_s, grows


def explore_share(trials_s: float, kept_s: float) -> float:
    """Exploration's share of the trials' time: what lies beyond the `kept_s` that
    exploitation keeps, at most `MAX_EXPLORE_SHARE`."""
    if kept_s <= 0:
        return MAX_EXPLORE_SHARE
    return min(MAX_EXPLORE_SHARE, max(0.0, 1.0 - kept_s / trials_s))


def exploiting(study: optuna.Study, run: str) -> bool:
    """Whether this search's long trainings were enqueued."""
    return any(True for _ in _exploits(study, run))


def long_trainings_waiting(study: optuna.Study, run: str) -> bool:
    """Whether a long training of this search waits to run (the next trial runs it)."""
    return any(t.state == _WAITING for t in _exploits(study, run))


# Given a configuration's params, the seconds its long training gets, its exploration
# trial (None: a starting point never explored) and the study's trials: the wider point
# to train instead, or None (see `_grow.Grower`).
Grow = Callable[
    [dict[str, Any], float, "optuna.trial.FrozenTrial | None", list[optuna.trial.FrozenTrial]],
    dict[str, Any] | None,
]


def start_exploiting(
    study: optuna.Study,
    split: Split,
    untried: dict[str, Any] | None = None,
    grow: Grow | None = None,
) -> list[int]:
    """Enqueue the best `split.exploit_n` distinct configurations of the complete
    trials, once per search (only the process that made the study calls it); the ones
    after the best only when they scored within `SECOND_EXPLOIT_GAP` of it. With no
    complete trial, `untried` (a starting point) trains long instead, when given.
    `grow` may swap each for a wider point of it that its share of the time holds.

    Returns:
        The numbers of the trials whose configurations were enqueued (empty when it was
        done before, no trial completed, or `untried` was enqueued).
    """
    if exploiting(study, split.run):
        return []
    trials = study.get_trials(deepcopy=False)
    if untried is not None and not any(t.state == _COMPLETE for t in trials):
        wider = grow(untried, _time_left(split), None, trials) if grow else None
        attrs = TrialRecord.attrs(
            exploit=True,
            exploit_run=split.run,
            starting_point=True,
            grown_from=untried if wider else None,
        )
        study.enqueue_trial(wider or untried, user_attrs=attrs, skip_if_exists=False)
        return []
    n = split.exploit_n
    chosen: list[optuna.trial.FrozenTrial] = []
    for trial in ranked_complete(study):  # ties: the lower loss
        if len(chosen) == n or (chosen and not _close(score(chosen[0]), score(trial))):
            break
        if trial.params not in [c.params for c in chosen]:
            chosen.append(trial)
    # Every growth is decided before the first long training is enqueued, so that no
    # worker starts it while the next one is still being sized.
    share = _time_left(split) / max(1, len(chosen))
    trainings: list[tuple[optuna.trial.FrozenTrial, dict[str, Any] | None]] = []
    for trial in chosen:
        wider = grow(trial.params, share, trial, trials) if grow else None
        final = [w or t.params for t, w in trainings]
        if (wider or trial.params) not in final:  # a resumed study's grown one and its
            trainings.append((trial, wider))  # explored configuration: train it once
    for trial, wider in trainings:
        attrs = TrialRecord.attrs(
            promoted_from=trial.number,
            exploit=True,
            exploit_run=split.run,
            grown_from=trial.params if wider else None,
        )
        study.enqueue_trial(wider or trial.params, user_attrs=attrs, skip_if_exists=False)
    return [t.number for t, _ in trainings]


def train_as_explored(study: optuna.Study, grown: optuna.Trial) -> None:
    """Enqueue the configuration a grown long training grew from, to train in its place
    (its wider model runs too slow, see `_grow.GrownPace`): a long training of the same
    search, which gets what is left of the time. Called while `grown` still runs, so
    that no worker meanwhile finds exploitation done and starts a trial of its own."""
    record = TrialRecord.read(grown)
    attrs = TrialRecord.attrs(
        promoted_from=record.promoted_from,
        exploit=True,
        exploit_run=record.exploit_run,
        starting_point=record.starting_point,
    )
    study.enqueue_trial(record.grown_from, user_attrs=attrs, skip_if_exists=False)


def _time_left(split: Split) -> float:
    """Seconds from now to the trials' deadline (exploitation ends with it)."""
    return max(0.0, split.exploit_from + split.exploit_s - time.monotonic())


def _close(best: float | None, other: float | None) -> bool:
    """Whether `other` scored within `SECOND_EXPLOIT_GAP` (relative) of `best`."""
    if best is None or other is None:
        return False
    return abs(best - other) <= SECOND_EXPLOIT_GAP * abs(best)


def exploit_epoch_cap(explored: TrialRecord, max_epochs: int, split: Split | None = None) -> int:
    """A long training's epoch cap, from its configuration's exploration trial; only its
    time limits it when `split` kept that time for a wider one (`Split.grows`), grown
    or not."""
    if split is not None and split.grows:
        return UNCAPPED_EPOCHS
    if explored.planned_epochs is not None and explored.planned_epochs < max_epochs:
        return UNCAPPED_EPOCHS  # cut short by its time cap: only the time limits it now
    return max_epochs * EXPLOIT_EPOCH_FACTOR


def _exploits(study: optuna.Study, run: str | None) -> list[optuna.trial.FrozenTrial]:
    """The long trainings the search with token `run` enqueued."""
    records = ((t, TrialRecord.read(t)) for t in study.get_trials(deepcopy=False))
    return [t for t, r in records if r.exploit and r.exploit_run == run]


def seconds_text(value: float) -> str:
    """Seconds as people read them: "4.2 s", "40 s", "3.5 min"."""
    if value < 10:
        return f"{value:.1f} s"
    if value < 120:
        return f"{value:.0f} s"
    return f"{value / 60:.1f} min"
