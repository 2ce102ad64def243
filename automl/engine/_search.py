"""The trial loop: open the study, run trials until the budget is spent, export the best.

Layering: this module calls the data layer, the space, the trainer, the tracker and the
exporter, in that order; none of them calls back here.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import optuna

from automl import tracking
from automl._errors import TrialFailed, UsageError
from automl.config import SearchConfig, mask_url
from automl.data import Dataset, load_data
from automl.data._encoding import Encoded
from automl.engine._fidelity import is_promoted, promote_best, subset_indices
from automl.engine._interrupt import graceful_interrupt, raise_if
from automl.engine._memory import MemoryWatch, frozen_heap, recycle_limit_mb, rss_mb
from automl.engine._observer import SearchObserver
from automl.engine._reporting import StudyPublisher
from automl.engine._space_check import check_space, stop_if_space_is_broken
from automl.engine._study import (
    JOURNAL_PREFIX,
    budget_spent,
    count_finished,
    fail_stale_trials,
    heartbeat_seconds,
    make_pruner,
    make_sampler,
    make_storage,
)
from automl.engine._trainer import (
    Objective,
    SpaceFailed,
    TrialOutcome,
    build_model,
    fit_trial,
    one_line,
)
from automl.engine._workers import (
    recorded_config,
    spawn_workers,
    stop_workers,
    wait_for_workers,
)
from automl.export import best_trial_or_none, export_best, save_plain, summarize
from automl.preflight import check_storage_url, check_tracking_uri
from automl.spaces import HyperParameters, ModelSpec, Space, resolve_space

logger = logging.getLogger("automl")


@dataclasses.dataclass
class SearchResult:
    """What `search` returns.

    Attributes:
        study: The Optuna study, for anything else.
        summary: The content of `summary.json`.
        best_model: The best model (None when no trial completed).
        recycled: A worker stopped early for a fresh process to go on.
    """

    study: optuna.Study
    summary: dict[str, Any]
    best_model: keras.Model | None
    recycled: bool = False  # a worker that stopped because its memory grew

    @property
    def best_params(self) -> dict[str, Any]:
        """Params of the best trial."""
        return self.summary["best"]["params"] if self.summary.get("best") else {}


def run_search(
    config: SearchConfig,
    observer: SearchObserver | None = None,
    *,
    space: Space | None = None,
    data: Dataset | None = None,
    worker: bool = False,
) -> SearchResult:
    """Run (or resume) one search as `config` says.

    Args:
        config: The options; `config.space` and `config.dataset` name what to search
            unless `space` / `data` are given as objects.
        observer: Receives progress events.
        space: A resolved space (a user's function or HyperModel), instead of a name.
        data: An in-memory dataset, instead of a built-in name.
        worker: Join the existing study as one more worker (`automl worker`): attach to
            its MLflow parent run, run trials until the shared budget is spent, export
            nothing.

    Raises:
        UsageError: For unknown names, unreachable URLs, or a space whose ranges or
            config are wrong, before any training; or when the first trials all fail in
            the space itself.
    """
    # --timeout is wall-clock time for the whole run: setup (MLflow's and Optuna's
    # database creation, data loading, the space check) comes out of the budget too.
    started = time.monotonic()
    data_given, space_given = data is not None, space is not None
    if config.jobs > 1 and (data_given or space_given):
        raise UsageError(
            "jobs > 1 needs a dataset name or path and a space name or file (worker "
            "processes rebuild them); pass those, or leave jobs at 1."
        )
    if data is not None:
        config.dataset = data.name
    if space is not None:
        config.space = space.label
    config.validate(in_memory_data=data is not None)
    observer = observer or SearchObserver()
    check_storage_url(config.storage)
    if config.tracking_uri is not None:
        check_tracking_uri(config.tracking_uri)
    space = space or resolve_space(config.space)
    observer.stage("loading data")
    if data is None:
        data = load_config_data(config)
    spec = model_spec(data, data.encode(None), config.max_epochs)
    space.check_fits(spec, data.name)
    check_space(space, spec, config.seed, choose=getattr(data.encoder, "choose", None))
    objective = Objective.for_task(data.task, config.metric)
    class_weight = _class_weight(config.class_weight, data)

    out = Path(config.out)
    try:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create --out {out} ({exc.strerror}); pass another folder."
        ) from None

    tracker = tracking.make_tracker(config.tracking_uri, config.study)
    study = optuna.create_study(
        study_name=config.study,
        storage=make_storage(config.storage, on_stale_trial=tracker.close_lost_trial),
        # Workers sample from their own random streams: one seed would repeat points.
        sampler=make_sampler(config.sampler, None if worker else config.seed),
        pruner=make_pruner(config.pruner, config.max_epochs),
        direction=objective.direction,
        load_if_exists=True,
    )
    if not study.trials and not worker:
        in_memory = data_given or space_given
        _record_study_attrs(study, config, data, objective, in_memory=in_memory)
        for point in space.starting_points(spec):
            study.enqueue_trial(point, user_attrs={"starting_point": True})
    _check_same_search(study, config)
    objective = _recorded_objective(study, config, objective)
    spec = dataclasses.replace(spec, metric=objective.monitor.removeprefix("val_"))
    recorded_run = study.user_attrs.get("mlflow_run_id")
    if worker:  # every worker logs its trials under the study's one parent run
        parent = tracker.attach(recorded_run, config.study)
    else:
        parent = tracker.start_study(recorded_run, config.study, _study_params(config, data))
    publisher = StudyPublisher(tracker, config, data, out)
    state, workers, model = "FAIL", [], None
    with graceful_interrupt() as pressed:
        try:
            if not worker:  # a worker may log elsewhere: the study keeps the creator's run
                study.set_user_attr("mlflow_run_id", parent)
            deadline = started + config.timeout if config.timeout else None
            observer.search_started(
                study=config.study,
                trials=config.trials,
                timeout=None if deadline is None else max(0.0, deadline - time.monotonic()),
                done=count_finished(study),
                best=_best_value(study),
            )
            run_trial = _TrialRunner(
                config, data, spec, space, objective, tracker, out, observer, deadline, pressed
            )
            run_trial.class_weight = class_weight
            run_trial.publisher = None if worker else publisher  # one process publishes
            if config.subset:
                run_trial.subset = subset_indices(
                    data.y_train, config.subset, config.seed, data.task == "classification"
                )
            recorded = study.user_attrs.get("config") or {}
            can_hand_off = bool(recorded) and not recorded.get("in_memory")
            run_trial.memory = MemoryWatch(recycle_limit_mb() if can_hand_off else 0)
            if config.jobs > 1 and not worker:
                workers = spawn_workers(config, range(1, config.jobs), deadline)
            if not budget_spent(study, config.trials):
                # At least one trial starts, even when setup used up the budget.
                left = None if deadline is None else max(1.0, deadline - time.monotonic())
                with frozen_heap():
                    study.optimize(
                        run_trial,
                        timeout=left,
                        catch=(TrialFailed,),
                        gc_after_trial=True,
                        callbacks=[run_trial.after_trial],
                    )
            raise_if(pressed)
            if run_trial.recycled and not worker:
                logger.warning(
                    "memory grew %.0f MB since the first trial (AUTOML_RECYCLE_MB=%g): fresh "
                    "worker processes take the next trials; their logs are in %s",
                    run_trial.memory.growth,
                    run_trial.memory.limit_mb,
                    out / "workers",
                )
                workers += spawn_workers(config, [len(workers) + 1], deadline)
            if workers:
                observer.stage("waiting for the other workers to finish their trials")
                wait_for_workers(workers, pressed, _Respawner(config, study, observer, deadline))
            if not worker:
                with frozen_heap():
                    _run_leftovers(study, run_trial)
            if worker:
                summary = summarize(study, config)
            else:
                observer.stage("scoring the best model on the test set")
                summary, model = export_best(study, data, out, tracker, config)
                observer.stage("writing the study report to MLflow")
                publisher.refresh(study, summary)
            state = "COMPLETE"
        except KeyboardInterrupt:
            state = "INTERRUPTED"
            raise
        finally:
            stop_workers(workers)
            if tracker.owns_parent:
                tracker.end_run(parent, state)
            tracker.finish(patience=_mlflow_patience())
    return SearchResult(study, summary, model, recycled=run_trial.recycled)


class _Respawner:
    """While workers run: show their finished trials, and replace a worker that retired
    for memory (exit `RECYCLE_EXIT`) as long as the budget is not spent."""

    def __init__(
        self,
        config: SearchConfig,
        study: optuna.Study,
        observer: SearchObserver,
        deadline: float | None,
    ) -> None:
        self.config, self.study, self.observer = config, study, observer
        self.deadline = deadline
        self.seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}

    def follow(self) -> None:
        for trial in self.study.get_trials(deepcopy=False):
            if trial.state.is_finished() and trial.number not in self.seen:
                self.seen.add(trial.number)
                reason = trial.user_attrs.get("reason", "")
                best = _best_value(self.study)
                self.observer.trial_ended(trial.number, trial.state.name, trial.value, best, reason)

    def replace(self, index: int) -> subprocess.Popen[bytes] | None:
        if budget_spent(self.study, self.config.trials):
            return None
        fresh = spawn_workers(self.config, [index], self.deadline)
        return fresh[0] if fresh else None


def _run_leftovers(study: optuna.Study, run_trial: _TrialRunner) -> None:
    """Give the budget of trials whose worker died to new trials.

    A dead worker's trial still looks RUNNING until its heartbeat lapses; the loop above
    may have stopped on a budget that counted it. Wait for such trials to end or go stale
    (then they are failed and retried), and run what the budget still allows.
    """
    if run_trial.config.trials is None or run_trial.config.storage.startswith(JOURNAL_PREFIX):
        return  # no count to fill, or no heartbeats (journal files)
    give_up = time.monotonic() + 4 * heartbeat_seconds()
    while time.monotonic() < min(give_up, run_trial.deadline or give_up):  # within --timeout
        raise_if(run_trial.pressed)
        fail_stale_trials(study)
        if not budget_spent(study, run_trial.config.trials):
            study.optimize(
                run_trial,
                n_trials=1,
                catch=(TrialFailed,),
                gc_after_trial=True,
                callbacks=[run_trial.after_trial],
            )
            give_up = time.monotonic() + 4 * heartbeat_seconds()
        elif not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            return
        else:
            time.sleep(1.0)


def load_config_data(config: SearchConfig) -> Dataset:
    """The dataset `config` names, split with its seed (the same split on every worker)."""
    return load_data(
        config.dataset,
        data_dir=config.data_dir,
        seed=config.seed,
        target=config.target,
        text_column=config.text_column,
        task=config.task,
    )


def model_spec(data: Dataset, encoded: Encoded, max_epochs: int) -> ModelSpec:
    """The facts about `data` (as `encoded` for a space) a space builds from."""
    normalization = None
    x = encoded.x_train
    if encoded.kind in ("vector", "sequence"):  # per feature, over rows (and timesteps)
        axes = tuple(range(x.ndim - 1))
        normalization = (x.mean(axis=axes), x.var(axis=axes))
    target_stats = None
    if data.task == "regression":
        target_stats = (float(data.y_train.mean()), float(data.y_train.std()) or 1.0)
    vocab_size = encoded.vocab_size
    if encoded.kind == "text" and vocab_size is None:
        vocab_size = _vocab_size(data)
    return ModelSpec(
        input_shape=encoded.input_shape,
        kind=encoded.kind,
        task=data.task,
        num_classes=data.num_classes if data.task == "classification" else 1,
        n_train=len(data.x_train),
        max_epochs=max_epochs,
        normalization=normalization,
        vocab_size=vocab_size,
        target_stats=target_stats,
    )


def _vocab_size(data: Dataset) -> int:
    """Token ids run from 0 to the largest id in any split (an unseen id must not overflow)."""
    return 1 + max(int(part.max()) for part in (data.x_train, data.x_val, data.x_test) if part.size)


class _TrialRunner:
    """The Optuna objective: one call runs one trial end to end and logs it."""

    def __init__(
        self,
        config: SearchConfig,
        data: Dataset,
        spec: ModelSpec,
        space: Space,
        objective: Objective,
        tracker: tracking.StudyTracker,
        out: Path,
        observer: SearchObserver,
        deadline: float | None,
        pressed: Callable[[], bool],
    ) -> None:
        self.config, self.data, self.spec, self.space = config, data, spec, space
        self.objective, self.tracker, self.out = objective, tracker, out
        self.observer, self.deadline, self.pressed = observer, deadline, pressed
        self.class_weight: dict[int, float] | None = None
        self.subset: np.ndarray | None = None  # --subset: the low-fidelity training rows
        self.publisher: StudyPublisher | None = None
        self.memory = MemoryWatch(0)
        self.recycled = False  # stopped taking trials: its memory grew too much

    def __call__(self, trial: optuna.Trial) -> float:
        raise_if(self.pressed)
        seed = (self.config.seed or 0) * 100_003 + trial.number
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        # No gc.collect() here: Optuna collects after every trial (gc_after_trial), and
        # check_space before the first; a second full pass would cost 0.3-0.7 s a trial
        # on a TensorFlow-sized heap (benchmarks/overhead.py).
        keras.utils.clear_session(free_memory=False)
        keras.utils.set_random_seed(seed)
        run_id = self.tracker.start_trial(trial.number, self.config.study)
        if self.tracker.created(run_id):  # for closing it if the worker dies
            trial.set_user_attr("mlflow_run_id", run_id)
        started = time.perf_counter()
        state, reason, epochs, tags = "FAIL", "", 0, {}

        def report(epoch: int, logs: dict[str, float]) -> None:
            nonlocal epochs
            epochs = epoch + 1
            self.tracker.log_epoch(run_id, logs, step=epochs)  # 1-based, as Optuna's
            self.observer.epoch_ended(trial.number, epochs, self.config.max_epochs, logs)

        try:
            hp = HyperParameters(trial, self.space.overrides)
            encoded = self.data.encode(hp)
            model = build_model(self.space, hp, self._spec_for(encoded), self.objective)
            params = {**trial.params, **_fixed(hp, trial)}
            n_params = model.count_params()
            self.tracker.log_params(run_id, {**params, "n_params": n_params})
            self.tracker.log_metrics(run_id, {"n_params": n_params})
            self.observer.trial_started(trial.number, params)
            promoted = is_promoted(trial)
            rows = None if promoted else self.subset
            trial.set_user_attr("fidelity", 1.0 if rows is None else self.config.subset)
            x_train, y_train = encoded.x_train, self.data.y_train
            if rows is not None:
                x_train, y_train = x_train[rows], y_train[rows]
            outcome = fit_trial(
                trial,
                model,
                (x_train, y_train),
                (encoded.x_val, self.data.y_val),
                batch_size=int(hp.fit_kwargs.get("batch_size", hp.values.get("batch_size", 32))),
                max_epochs=self.config.max_epochs,
                patience=self.config.patience,
                objective=self.objective,
                deadline=self.deadline,
                report=report,
                protected=bool(trial.user_attrs.get("starting_point")) or promoted,
                silent=promoted,
                interrupted=self.pressed,
                hp=hp,
                custom_fit=self.space.fit,
                class_weight=self.class_weight,
                stream=encoded.stream,
            )
            late = {k: v for k, v in trial.params.items() if k not in params}
            self.tracker.log_params(run_id, late)  # sampled inside a HyperModel's fit
            self._keep_if_best(trial, outcome, encoded)
            trial.set_user_attr("best_epoch", outcome.best_epoch)
            state = "COMPLETE"
            return outcome.value
        except optuna.TrialPruned as exc:
            state, reason = "PRUNED", str(exc)
            tags["pruned_at_epoch"] = epochs
            raise
        except KeyboardInterrupt:
            reason = "interrupted"
            raise
        except UsageError as exc:  # the space's ranges or config: stop the search
            reason = str(exc)
            raise
        except Exception as exc:
            reason = one_line(exc)
            if isinstance(exc, SpaceFailed):
                trial.set_user_attr("space_failed", True)
            raise TrialFailed(reason) from exc
        finally:
            seconds = time.perf_counter() - started
            trial.set_user_attr("epochs", epochs)
            trial.set_user_attr("seconds", round(seconds, 2))
            rss = rss_mb()
            if rss is not None:  # this worker's memory after the trial (see _memory)
                trial.set_user_attr("rss_mb", round(rss, 1))
            if reason:
                trial.set_user_attr("reason", reason)
            self.tracker.log_metrics(run_id, {"duration_s": seconds, "epochs": epochs})
            self.tracker.end_run(run_id, state, {**tags, **({"reason": reason} if reason else {})})

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Optuna study callback: runs once the trial's state is stored."""
        self.observer.trial_ended(
            trial.number,
            trial.state.name,
            trial.value,
            _best_value(study),
            trial.user_attrs.get("reason", ""),
        )
        raise_if(self.pressed)  # Ctrl-C between trials: stop before the next one
        stop_if_space_is_broken(study)
        fail_stale_trials(study)  # a dead worker's trial: FAIL, and retried
        if budget_spent(study, self.config.trials):  # counted across every worker
            study.stop()
        elif self.memory.grown():  # a fresh process takes over (see _memory)
            self.recycled = True
            study.stop()
        if self.subset is not None:
            promote_best(study)
        if self.publisher is not None:
            self.publisher.refresh_if_due(study)

    def _spec_for(self, encoded: Encoded) -> ModelSpec:
        """The study's spec, with this trial's input shape and vocabulary (text choices)."""
        vocab_size = encoded.vocab_size or self.spec.vocab_size  # token ids without encoder
        if (encoded.input_shape, vocab_size) == (self.spec.input_shape, self.spec.vocab_size):
            return self.spec
        return dataclasses.replace(
            self.spec, input_shape=encoded.input_shape, vocab_size=vocab_size
        )

    def _keep_if_best(self, trial: optuna.Trial, outcome: TrialOutcome, encoded: Encoded) -> None:
        """Save the model when it beats every earlier complete trial; drop the old best.

        The saved model takes raw data: `encoded.wrap` puts the dataset's preprocessing
        (table columns, text vectorization) in front of the trained model.
        """
        previous = best_trial_or_none(trial.study)
        better = previous is None or (
            outcome.value > previous.value
            if self.objective.direction == "maximize"
            else outcome.value < previous.value
        )
        if not better:
            return
        path = (self.out / "checkpoints" / f"trial-{trial.number}.keras").resolve()
        save_plain(outcome.model, path, wrap=encoded.wrap)
        trial.set_user_attr("model_path", str(path))
        old = previous.user_attrs.get("model_path") if previous else None
        if old and Path(old).exists() and Path(old) != path:
            os.remove(old)


def _mlflow_patience() -> float:
    """Seconds the end of a search waits for an unreachable MLflow server to come back
    (`AUTOML_MLFLOW_PATIENCE`, 120 by default)."""
    try:
        return float(os.environ.get("AUTOML_MLFLOW_PATIENCE", "120"))
    except ValueError:
        return 120.0


def _class_weight(option: str | None, data: Dataset) -> dict[int, float] | None:
    """scikit-learn's "balanced" weights (n / (classes * count)) for `--class-weight`."""
    if option is None:
        return None
    if data.task != "classification":
        raise UsageError("--class-weight applies to classification only; leave it out.")
    from sklearn.utils.class_weight import compute_class_weight

    classes = np.arange(data.num_classes)
    weights = compute_class_weight(option, classes=classes, y=data.y_train)
    return {int(c): float(w) for c, w in zip(classes, weights, strict=True)}


def _check_same_search(study: optuna.Study, config: SearchConfig) -> None:
    """Refuse to resume a study with another dataset or space: its trials would not compare."""
    for key in ("dataset", "space"):
        recorded, asked = study.user_attrs.get(key), getattr(config, key)
        if recorded is not None and recorded != asked:
            raise UsageError(
                f"study {config.study!r} was created for {key} {recorded!r}, not {asked!r}; "
                f"pass another --study to start a new one."
            )


def _recorded_objective(
    study: optuna.Study, config: SearchConfig, objective: Objective
) -> Objective:
    """A resumed study keeps the metric it was created with; another `--metric` is refused."""
    recorded = study.user_attrs.get("metric", objective.monitor)
    if recorded == objective.monitor:
        return objective
    if config.metric is not None:
        raise UsageError(
            f"study {config.study!r} scores trials on {recorded}, not val_{config.metric}; "
            f"pass another --study to start a new one."
        )
    return Objective(recorded, study.user_attrs.get("direction", objective.direction))


def _record_study_attrs(
    study: optuna.Study,
    config: SearchConfig,
    data: Dataset,
    objective: Objective,
    *,
    in_memory: bool,
) -> None:
    """Store what the study is, so `show`, `export` and resumed runs need no flags."""
    attrs = {
        "dataset": config.dataset,
        "space": config.space,
        "max_epochs": config.max_epochs,
        "seed": config.seed,
        "task": data.task,
        "metric": objective.monitor,
        "direction": objective.direction,
        "data_dir": str(config.data_dir) if config.data_dir else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "config": recorded_config(config, in_memory=in_memory),  # for `automl worker`
    }
    for key, value in attrs.items():
        study.set_user_attr(key, value)


def _study_params(config: SearchConfig, data: Dataset) -> dict[str, Any]:
    return {
        "space": config.space,
        "trials": config.trials,
        "timeout_s": config.timeout,
        "max_epochs": config.max_epochs,
        "sampler": config.sampler,
        "pruner": config.pruner,
        "seed": config.seed,
        "patience": config.patience,
        "metric": config.metric,
        "class_weight": config.class_weight,
        "subset": config.subset,
        "storage": mask_url(config.storage),
        **data.describe(),
        **tracking.library_versions(),
    }


def _best_value(study: optuna.Study) -> float | None:
    best = best_trial_or_none(study)
    return None if best is None else float(best.value)


def _fixed(hp: HyperParameters, trial: optuna.Trial) -> dict[str, Any]:
    """`hp.Fixed` values: recorded with the trial though Optuna never sampled them."""
    fixed = {k: v for k, v in hp.values.items() if k not in trial.params and k in hp.fixed}
    for key, value in fixed.items():
        trial.set_user_attr(f"fixed_{key}", value)
    return fixed
