"""The Optuna objective: one call runs one trial end to end and logs it.

`TrialContext` is everything a trial needs, frozen when setup ends; `TrialObjective`
builds the model from the space, fits it (`_trainer`), keeps the best model on disk and
reports to MLflow and the observer. `after_trial` is the study callback that decides,
between trials, whether the loop goes on (budget, memory, Ctrl-C, a broken space).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import optuna

from automl._errors import TrialFailed, UsageError
from automl.data._encoding import Encoded
from automl.engine._checkpoints import keep_if_among_best
from automl.engine._fidelity import is_promoted, promote_best
from automl.engine._grow import Grower, GrownPace, grower_for
from automl.engine._interrupt import raise_if
from automl.engine._limits import REJECTED, Limits
from automl.engine._memory import MemoryWatch, rss_mb
from automl.engine._phases import (
    Window,
    exploit_epoch_cap,
    long_trainings_waiting,
    start_exploiting,
)
from automl.engine._plan import Plan
from automl.engine._resolution import takes_raw_images
from automl.engine._space_check import stop_if_space_is_broken
from automl.engine._study import budget_spent, fail_stale_trials
from automl.engine._timing import Speed, rows_of
from automl.engine._trainer import (
    FitPlan,
    Infeasible,
    SpaceFailed,
    batch_size_of,
    build_model,
    fit_trial,
    one_line,
    teaches_the_sampler,
)
from automl.export import best_value
from automl.footprint import measure_footprint
from automl.objective import score
from automl.record import TrialRecord, fixed_attr
from automl.spaces import HyperParameters, ModelSpec, Space

WAIT_FOR_LEADER_S = 1.0  # a worker at exploration's end, before it yields its trial
# A trial its time limited may run this many times its planned epochs when they run
# faster than estimated: a few timed steps misjudge an epoch by up to 2x here (at 55 T
# the recipe's read 116 s and ran 56 s; planned for 8 epochs, it stretched to 15).
STRETCH_MOST = 2
# ... and a long training this many: its window is most of the budget, what it leaves
# unused goes to trials that do not train long, and its estimate can be further off (at
# 165 T a grown tutorial CNN's epoch was estimated at twice the real one).
STRETCH_MOST_LONG = 4

if TYPE_CHECKING:
    from automl.config import SearchConfig
    from automl.data import Dataset
    from automl.engine._observer import SearchObserver
    from automl.engine._reporting import StudyPublisher
    from automl.objective import Objective
    from automl.tracking import StudyTracker


@dataclasses.dataclass(frozen=True)
class TrialContext:
    """What every trial of one search shares; built once, after setup.

    Attributes:
        config: The resolved options.
        data: The dataset, loaded once.
        spec: The facts about the data a space builds from.
        space: The resolved space.
        objective: The metric trials are scored on.
        tracker: MLflow (or nothing).
        observer: Progress events.
        deadline: `time.monotonic()` at which `--timeout` ends, or None.
        pressed: Whether Ctrl-C (or SIGTERM) came.
        memory: Tells when this process has grown enough to hand over.
        plan: What an epoch costs here; fits each trial's epochs to the time left.
        class_weight: Per-class loss weights (`--class-weight`), or None.
        subset: The low-fidelity training rows (`--subset`), or None.
        publisher: Keeps MLflow's report and champion model fresh (one process only).
        callbacks: The user's Keras callbacks, added to every trial's fit.
    """

    config: SearchConfig
    data: Dataset
    spec: ModelSpec
    space: Space
    objective: Objective
    tracker: StudyTracker
    observer: SearchObserver
    deadline: float | None
    pressed: Callable[[], bool]
    memory: MemoryWatch
    plan: Plan
    class_weight: dict[int, float] | None = None
    subset: np.ndarray | None = None
    publisher: StudyPublisher | None = None
    callbacks: tuple[keras.callbacks.Callback, ...] = ()

    @property
    def out(self) -> Path:
        """The search's output folder."""
        return Path(self.config.out)

    @property
    def limits(self) -> Limits:
        """What a model must meet to be trained (`--max-params`, `--max-latency-ms`)."""
        return Limits.of(self.config)


class TrialObjective:
    """Runs one trial per call (Optuna's objective) and judges the loop after each.

    Args:
        context: What every trial shares.
    """

    def __init__(self, context: TrialContext) -> None:
        self.context = context
        self.out_of_time = False  # a trial found that not even one epoch fits any more

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        context = self.context
        raise_if(context.pressed)
        seed = (context.config.seed or 0) * 100_003 + trial.number
        TrialRecord.write(trial, seed=seed, worker=f"{socket.gethostname()}:{os.getpid()}")
        # No gc.collect() here: Optuna collects after every trial (gc_after_trial), and
        # check_space before the first; a second full pass would cost 0.3-0.7 s a trial
        # on a TensorFlow-sized heap (benchmarks/overhead.py).
        keras.utils.clear_session(free_memory=False)
        keras.utils.set_random_seed(seed)
        run_id = context.tracker.start_trial(trial.number, str(context.config.study))
        if context.tracker.created(run_id):  # for closing it if the worker dies
            TrialRecord.write(trial, mlflow_run_id=run_id)
        started = time.perf_counter()
        log = _TrialLog(context, trial.number, run_id)
        try:
            value = self._train(trial, log)
            log.state = "COMPLETE"
            return value
        except optuna.TrialPruned as exc:
            log.state, log.reason = "PRUNED", str(exc)
            log.tags["pruned_at_epoch"] = log.epochs
            raise
        except KeyboardInterrupt:
            log.reason = "interrupted"
            raise
        except UsageError as exc:  # the space's ranges or config: stop the search
            log.reason = str(exc)
            raise
        except Exception as exc:
            log.reason = one_line(exc)
            if isinstance(exc, SpaceFailed):
                TrialRecord.write(trial, space_failed=True)
            if isinstance(exc, Infeasible):  # PRUNED: Optuna's constraints see it
                TrialRecord.write(trial, infeasible=True)
                raise optuna.TrialPruned(log.reason) from exc
            if teaches_the_sampler(exc):
                # Optuna's samplers skip FAIL trials but rank PRUNED ones below every
                # complete one: a point that diverged or ran out of memory is then
                # avoided. The trial still counts as failed (`failed_in_training`).
                TrialRecord.write(trial, failed_in_training=True)
                raise optuna.TrialPruned(f"failed: {log.reason}") from exc
            raise TrialFailed(log.reason) from exc
        finally:
            log.close(trial, time.perf_counter() - started)

    def _train(self, trial: optuna.Trial, log: _TrialLog) -> float | list[float]:
        """Build, fit and keep the model if it is the best; returns the trial's value
        (with its costs, in a multi-objective study)."""
        context = self.context
        self._yield_before_sampling(trial)
        hp = HyperParameters(trial, context.space.overrides)
        encoded = context.data.encode(hp)
        promoted = is_promoted(trial)
        rows = None if promoted else context.subset
        spec, model = self._build(trial, hp, self._spec_for(encoded, rows), promoted)
        self._measure(trial, model, encoded, log.run_id)
        epochs, until, most = self._planned_epochs(trial, hp, model, encoded, spec)
        if epochs != spec.max_epochs:  # a schedule built for the epochs the time allows
            spec = dataclasses.replace(spec, max_epochs=epochs)
            model = self._rebuild(trial, hp, spec)
        log.max_epochs = epochs
        params = {**trial.params, **_fixed(hp, trial)}
        n_params = model.count_params()
        logged = {**params, "n_params": n_params, "planned_epochs": epochs}
        if spec.kind == "image":
            logged["downsample"] = spec.downsample
        context.tracker.log_params(log.run_id, logged)
        context.observer.trial_started(trial.number, params)
        TrialRecord.write(trial, fidelity=1.0 if rows is None else context.config.subset)
        x_train, y_train = encoded.x_train, context.data.y_train
        if rows is not None:
            x_train, y_train = x_train[rows], y_train[rows]
        outcome = fit_trial(
            trial,
            model,
            (x_train, y_train),
            (encoded.x_val, context.data.y_val),
            self._fit_plan(trial, hp, promoted, epochs, until, most),
            report=log.epoch,
            interrupted=context.pressed,
            custom_fit=context.space.fit,
            hp=hp,
            stream=encoded.stream,
        )
        late = {k: v for k, v in trial.params.items() if k not in params}
        context.tracker.log_params(log.run_id, late)  # sampled inside a HyperModel's fit
        upload = context.tracker.checkpoint_uploader(log.run_id)  # to MLflow's artifacts
        folder = context.out / "checkpoints"
        TrialRecord.write(trial, best_epoch=outcome.best_epoch, val_loss=outcome.val_loss)
        keep_if_among_best(trial, outcome, encoded, context.objective, folder, upload=upload)
        return context.objective.values(outcome.value, TrialRecord.read(trial))

    def _build(
        self, trial: optuna.Trial, hp: HyperParameters, spec: ModelSpec, promoted: bool
    ) -> tuple[ModelSpec, keras.Model]:
        """The trial's spec and model, at lower resolution for an exploration trial of
        an image search that explores that way (see `_resolution`).

        Args:
            trial: The running trial; its record gets `downsample` (None: full size).
            hp: Its hyperparameters.
            spec: The study's spec for this trial, full size.
            promoted: A rerun of another trial (a long training, or `--subset`'s full
                data): always full size.

        Returns:
            The spec the model was built for, and the model.
        """
        factor = self.context.plan.explore_downsample
        TrialRecord.write(trial, downsample=None)  # a retried trial's record is copied
        if factor == 1 or promoted:
            return spec, build_model(self.context.space, hp, spec, self.context.objective)
        small = spec.downsampled(factor)
        try:
            model = build_model(self.context.space, hp, small, self.context.objective)
        except SpaceFailed:  # a point that needs the full-size images: train it so
            return spec, self._rebuild(trial, hp, spec)
        if not takes_raw_images(model, small):  # a space with its own keras.Input
            return spec, self._rebuild(trial, hp, spec)
        TrialRecord.write(trial, downsample=factor)
        return small, model

    def _measure(
        self, trial: optuna.Trial, model: keras.Model, encoded: Encoded, run_id: str
    ) -> None:
        """Record the built model's size and latency (`automl.footprint`).

        Raises:
            Infeasible: It breaks `--max-params` or `--max-latency-ms`.
        """
        data = self.context.data
        if encoded.stream is not None:  # file paths: decode one image
            example = encoded.stream(encoded.x_val[:1], data.y_val[:1], 1)[0][0]
        else:
            example = rows_of(encoded.x_val, 1)
        footprint = measure_footprint(model, example)
        TrialRecord.write(trial, **footprint.facts())
        self.context.tracker.log_metrics(run_id, footprint.facts())
        reason = self.context.limits.reason(footprint)
        if reason is not None:
            raise Infeasible(REJECTED + reason)

    def _planned_epochs(
        self,
        trial: optuna.Trial,
        hp: HyperParameters,
        model: keras.Model,
        encoded: Encoded,
        spec: ModelSpec,
    ) -> tuple[int, float | None, int]:
        """The epochs this trial gets: the cap, or as many as fit its window (the
        deadline, or with a split its exploration or exploitation share, see `_phases`);
        the window's end (None: not planned to time); and the most epochs it may stretch
        to when they run faster than estimated (`stretch_limit`, `ScheduleToTime`).

        Its epoch is estimated from one eager forward pass of its model, scaled by its
        family's measured costs (see `_plan`); an exploration trial's epochs fit its
        window with a spare (`Plan.epochs_in`).

        Raises:
            optuna.TrialPruned: Not even one epoch fits (see `_not_started`).
        """
        plan = self.context.plan
        if not plan.fits_to_time:
            return plan.max_epochs, None, plan.max_epochs
        speed = plan.speed_of(hp.values, grown=TrialRecord.read(trial).grown)
        trials = trial.study.get_trials(deepcopy=False)
        n_val = len(self.context.data.y_val)
        forward_s, explored = self._grown_basis(trial, trials, hp, speed)
        estimate, epoch_s = plan.epoch_estimate(
            speed, model, encoded, spec, batch_size_of(hp), n_val, trials,
            forward_s=forward_s, explored=explored,
        )  # fmt: skip
        window, cap = self._window(trial, trials)
        until = plan.deadline if window is None else window.until
        epochs = plan.epochs_in(window, speed, epoch_s, cap=cap)
        cap = plan.max_epochs if cap is None else cap
        TrialRecord.write(
            trial,
            planned_epochs=epochs,
            planned_epoch_s=round(epoch_s, 3),
            estimated_epoch_s=round(estimate, 4),
        )
        if epochs < 1:
            spare = 1.0 if window is None else window.spare
            self._not_started(trial, window, spare * epoch_s + speed.fit_overhead_s)
        long = TrialRecord.read(trial).exploit
        return epochs, until, stretch_limit(epochs, cap, long=long)

    def _grown_basis(
        self,
        trial: optuna.Trial,
        trials: list[optuna.trial.FrozenTrial],
        hp: HyperParameters,
        speed: Speed,
    ) -> tuple[float | None, optuna.trial.FrozenTrial | None]:
        """What a grown long training's estimate rests on, as the grower's did
        (`Plan.wider_basis`, its configuration's exploration trial among `trials`);
        (None, None) for other trials (their forward pass is timed now)."""
        facts = TrialRecord.read(trial)
        if not facts.grown:
            return None, None
        explored = next((t for t in trials if t.number == facts.promoted_from), None)
        context = self.context
        return context.plan.wider_basis(context.space, context.spec, speed, hp.values, explored)

    def _yield_before_sampling(self, trial: optuna.Trial) -> None:
        """Prune, before any parameter is sampled, a trial that cannot run whatever its
        model: a long training waits or is stale, exploration's time or the budget holds
        not even the quickest trial. Without params it teaches the sampler nothing
        (Optuna's TPE ranks a pruned trial below every complete one), where the point it
        would have sampled was never tried.

        Raises:
            optuna.TrialPruned: See `_not_started`.
        """
        plan = self.context.plan
        if not plan.fits_to_time or plan.deadline is None:
            return
        quickest = plan.shortest_trial_s()
        if plan.out_of_time():
            TrialRecord.write(trial, planned_epochs=0)
            self._not_started(trial, None, quickest)
        if plan.split is None:
            return
        window = plan.split.window(trial, plan.deadline)
        waits = window.limit == "exploit" and not TrialRecord.read(trial).exploit
        over = window.limit == "exploration" and window.until - time.monotonic() < quickest
        if window.limit == "stale" or waits or over:
            TrialRecord.write(trial, planned_epochs=0)
            self._not_started(trial, window, quickest)

    def _window(
        self, trial: optuna.Trial, trials: list[optuna.trial.FrozenTrial]
    ) -> tuple[Window | None, int | None]:
        """The trial's window (None: until the deadline) and epoch cap (None:
        `max_epochs`); an exploration trial's window is short, a long training's long
        (its cap from its configuration's exploration trial, one of the study's `trials`)."""
        plan = self.context.plan
        if plan.split is None or plan.deadline is None:
            return None, None
        window = plan.split.window(trial, plan.deadline)
        facts = TrialRecord.read(trial)
        if not facts.exploit:
            return window, None
        explored = next((t for t in trials if t.number == facts.promoted_from), None)
        record = TrialRecord() if explored is None else TrialRecord.read(explored)
        return window, exploit_epoch_cap(record, plan.max_epochs, plan.split)

    def _not_started(self, trial: optuna.Trial, window: Window | None, needed_s: float) -> None:
        """Not even one epoch fits the trial's window: say why, and what comes next.

        Raises:
            optuna.TrialPruned: Always. Too slow for an exploration trial's cap: pruned
                (the sampler learns it). At exploration's end: exploitation starts. A
                long training waiting: this trial yields. Too slow for the time left:
                pruned, and the study stops once not even the quickest trial fits.
        """
        limit, split = window.limit if window else "deadline", self.context.plan.split
        if limit == "cap" and split is not None:
            raise optuna.TrialPruned(
                f"not started: one epoch needs about {needed_s:.0f} s, more than an "
                f"exploration trial's {split.explore_trial_s:.0f} s"
            )
        if limit == "exploration" and split is not None:
            if self.context.publisher is not None:  # the study's own process decides
                start_exploiting(trial.study, split, grow=self.grower())
            else:  # within a second the study's process enqueues the long trainings
                time.sleep(WAIT_FOR_LEADER_S)
            raise optuna.TrialPruned("not started: exploration's time is up")
        if limit == "stale":
            raise optuna.TrialPruned("not started: a long training of an earlier search")
        if limit == "exploit" and not TrialRecord.read(trial).exploit:
            raise optuna.TrialPruned("not started: the best configurations train long first")
        if not self.context.plan.out_of_time():  # a quicker point may still fit
            raise optuna.TrialPruned(
                f"not started: one epoch needs about {needed_s:.0f} s, more than the time left."
            )
        self.out_of_time = True
        trial.study.stop()
        raise optuna.TrialPruned(
            f"not started: one epoch needs about {needed_s:.0f} s, more than the time left."
        )  # _explore starts no other trial once the quickest does not fit either

    def _rebuild(self, trial: optuna.Trial, hp: HyperParameters, spec: ModelSpec) -> keras.Model:
        """The trial's model again, with the same params and seed, for another spec."""
        keras.utils.clear_session(free_memory=False)
        keras.utils.set_random_seed(TrialRecord.read(trial).seed or 0)
        hp.callbacks.clear()  # the space adds them again as it builds
        hp.fit_kwargs.clear()
        return build_model(self.context.space, hp, spec, self.context.objective)

    def _fit_plan(
        self,
        trial: optuna.Trial,
        hp: HyperParameters,
        promoted: bool,
        epochs: int,
        until: float | None = None,
        most: int | None = None,
    ) -> FitPlan:
        """How the trial trains: `epochs` planned, up to `most` when they run faster
        (see `_planned_epochs`), in the window that ends at `until`."""
        config, objective = self.context.config, self.context.objective
        facts = TrialRecord.read(trial)
        # A long training's schedule decays over the epochs it was planned for, and its
        # last, low-rate epochs gain the most: it runs them all (the best epoch's weights
        # are still the ones kept), as the recipe alone does in `benchmarks.recipes`.
        patience = epochs if facts.exploit else int(config.patience or 1)
        speed = None if until is None else self.context.plan.speed_of(hp.values, facts.grown)
        return FitPlan(
            batch_size=batch_size_of(hp),
            max_epochs=epochs,
            patience=max(1, patience),
            objective=self.context.objective,
            deadline=self.context.deadline,
            until=until,
            stretch_to=most,
            fit_overhead_s=None if speed is None else speed.fit_overhead_s,
            protected=facts.starting_point or promoted,
            silent=promoted,
            class_weight=self.context.class_weight,
            callbacks=(*self.context.callbacks, *hp.callbacks, *_paced(trial, until, speed)),
            costs=tuple(objective.cost_values(facts)) if objective.multi else None,
        )

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Optuna study callback: runs once the trial's state is stored."""
        context = self.context
        facts = TrialRecord.read(trial)
        state = "FAIL" if facts.counts_as_failed else trial.state.name  # as people see it
        context.observer.trial_ended(
            trial.number, state, score(trial), best_value(study), facts.reason
        )
        raise_if(context.pressed)  # Ctrl-C between trials: stop before the next one
        stop_if_space_is_broken(study)
        context.limits.stop_if_unmeetable(study)
        fail_stale_trials(study)  # a dead worker's trial: FAIL, and retried
        if context.subset is not None:
            promote_best(study)
        self.start_exploiting_if_due(study)
        # The budget counts trials across every worker; a process whose memory grew hands
        # over to a fresh one (see _memory), unless only the long trainings are left.
        split, keep = context.plan.split, None
        if split is not None:  # asked only past the memory limit
            keep = functools.partial(long_trainings_waiting, study, split.run)
        if budget_spent(study, context.config.trials) or context.memory.grown(keep=keep):
            study.stop()
        if context.publisher is not None:
            context.publisher.refresh_if_due(study)

    def start_exploiting_if_due(self, study: optuna.Study) -> None:
        """Enqueue the best configurations' long trainings once no other exploration
        trial would fit. Only the study's own process decides (workers would race), after
        each of its trials and, while its workers run the trials (`--jobs`, or after it
        handed over for memory), every half second (`WorkerPool.wait`)."""
        context = self.context
        split = context.plan.split
        if context.publisher is None or split is None:
            return
        if time.monotonic() + context.plan.shortest_trial_s() >= split.exploit_from:
            start_exploiting(study, split, grow=self.grower())

    def grower(self) -> Grower | None:
        """What may widen the long trainings (`_grow`); None when size, latency or a
        second objective weigh against a wider model."""
        c = self.context
        return grower_for(c.space, c.data, c.spec, c.plan, c.objective, c.limits)

    def _spec_for(self, encoded: Encoded, rows: np.ndarray | None) -> ModelSpec:
        """The study's spec, with this trial's input shape and vocabulary (text choices),
        and the rows it trains on (a `--subset` trial's epoch has fewer steps)."""
        spec = self.context.spec
        vocab_size = encoded.vocab_size or spec.vocab_size  # token ids without encoder
        n_train = spec.n_train if rows is None else len(rows)
        if (encoded.input_shape, vocab_size, n_train) == (
            spec.input_shape,
            spec.vocab_size,
            spec.n_train,
        ):
            return spec
        return dataclasses.replace(
            spec, input_shape=encoded.input_shape, vocab_size=vocab_size, n_train=n_train
        )


class _TrialLog:
    """One trial's MLflow run and progress events: its epochs as they end, its state,
    reason and tags at the end."""

    def __init__(self, context: TrialContext, number: int, run_id: str) -> None:
        self.context, self.number, self.run_id = context, number, run_id
        self.state, self.reason, self.epochs = "FAIL", "", 0
        self.max_epochs = int(context.config.max_epochs or 1)  # until the trial is planned
        self.tags: dict[str, Any] = {}

    def epoch(self, epoch: int, logs: dict[str, float]) -> None:
        """`fit_trial`'s report: one epoch (0-based) ended."""
        self.epochs = epoch + 1
        self.max_epochs = max(self.max_epochs, self.epochs)  # stretched past its plan
        self.context.tracker.log_epoch(self.run_id, logs, step=self.epochs)  # 1-based
        self.context.observer.epoch_ended(self.number, self.epochs, self.max_epochs, logs)

    def close(self, trial: optuna.Trial, seconds: float) -> None:
        """Record what the trial spent and end its MLflow run."""
        TrialRecord.write(trial, epochs=self.epochs, seconds=round(seconds, 2))
        rss = rss_mb()
        if rss is not None:  # this worker's memory after the trial (see _memory)
            TrialRecord.write(trial, rss_mb=round(rss, 1))
        if self.reason:
            TrialRecord.write(trial, reason=self.reason)
        tracker = self.context.tracker
        tracker.log_metrics(self.run_id, {"duration_s": seconds, "epochs": self.epochs})
        tags = {**self.tags, **({"reason": self.reason} if self.reason else {})}
        tracker.end_run(self.run_id, self.state, tags)


def stretch_limit(planned: int, cap: int, long: bool = False) -> int:
    """The most epochs a trial planned for `planned` of its `cap` may run when they run
    faster than estimated: `STRETCH_MOST` times as many (a `long` training's
    `STRETCH_MOST_LONG`) within the cap where its time limited them, else `planned`."""
    most = STRETCH_MOST_LONG if long else STRETCH_MOST
    return planned if planned >= cap else min(cap, most * planned)


def _fixed(hp: HyperParameters, trial: optuna.Trial) -> dict[str, Any]:
    """`hp.Fixed` values: recorded with the trial though Optuna never sampled them."""
    fixed = {k: v for k, v in hp.values.items() if k not in trial.params and k in hp.fixed}
    for key, value in fixed.items():
        trial.set_user_attr(fixed_attr(key), value)
    return fixed


def _paced(trial: optuna.Trial, until: float | None, speed: Speed | None) -> tuple[GrownPace, ...]:
    """A grown long training's check of its pace (`_grow.GrownPace`), at its `speed`'s
    fit overhead; () for others."""
    if not TrialRecord.read(trial).grown or until is None or speed is None:
        return ()
    return (GrownPace(trial, until, speed.fit_overhead_s),)
