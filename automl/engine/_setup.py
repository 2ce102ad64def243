"""Setup, the first phase: from what the caller asked to an open study, ready for trials.

Resolves the config, checks URLs, loads the data once, checks the space against it,
opens (or resumes) the Optuna study with its `StudyRecord`, and opens the MLflow parent
run. Nothing here trains; every mistake the user can make surfaces here, before the
first trial, as a `UsageError`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna

from automl import settings, tracking
from automl._errors import UsageError
from automl.baseline import try_fit_baseline
from automl.data import Dataset, load_data
from automl.data._encoding import Encoded
from automl.engine._grow import Grower, grower_for
from automl.engine._limits import Limits
from automl.engine._phases import start_exploiting
from automl.engine._plan import Plan, make_plan
from automl.engine._shared_plan import adopt_plan, share_plan
from automl.engine._space_check import check_space
from automl.engine._study import make_pruner, make_sampler, make_storage, may_be_shared
from automl.objective import Objective
from automl.preflight import check_storage_url, check_tracking_uri, mask_url
from automl.record import (
    StudyRecord,
    TrialRecord,
    mlflow_run_id,
    search_explore_downsample,
    search_run,
    set_mlflow_run_id,
    set_search_run,
)
from automl.spaces import ModelSpec, Space
from search_spaces import resolve_space

if TYPE_CHECKING:
    from automl.config import SearchConfig
    from automl.engine._observer import SearchObserver


@dataclasses.dataclass(frozen=True)
class Session:
    """An open search: what setup resolved and opened.

    Attributes:
        config: The resolved options.
        data: The dataset, loaded once.
        spec: The facts about the data a space builds from.
        space: The resolved space.
        objective: The metric trials are scored on (the study's, when resumed).
        study: The Optuna study.
        tracker: MLflow (or nothing).
        parent_run: The study's MLflow parent run.
        class_weight: Per-class loss weights (`class_weight="balanced"`), or None.
        in_memory: The data or the space came as objects (no worker can rebuild them).
        plan: What this machine measured, and how trials fit the budget.
        started: `time.monotonic()` at the start of the run.
        ready: `time.monotonic()` when setup ended.
        yardstick: The scikit-learn baseline fitted on the study's split (tables,
            vectors and text; None otherwise, on a worker, or when it could not be
            fitted).
    """

    config: SearchConfig
    data: Dataset
    spec: ModelSpec
    space: Space
    objective: Objective
    study: optuna.Study
    tracker: tracking.StudyTracker
    parent_run: str
    class_weight: dict[int, float] | None
    in_memory: bool
    plan: Plan
    started: float
    ready: float
    yardstick: dict[str, Any] | None = None

    @property
    def deadline(self) -> float | None:
        """`time.monotonic()` at which the trials' time ends (the timeout's end less the
        finish's estimate, see `_plan`), or None."""
        return self.plan.deadline

    @property
    def budget_end(self) -> float | None:
        """`time.monotonic()` at which `--timeout` ends (the finish's too), or None."""
        return _deadline(self.config, self.started)


def open_session(
    config: SearchConfig,
    observer: SearchObserver,
    *,
    space: Space | None = None,
    data: Dataset | None = None,
    worker: bool = False,
    started: float,
) -> Session:
    """Resolve, load, check, measure and open everything a search needs.

    `started` is `time.monotonic()` at the start of the run: the timeout counts from it.

    Raises:
        UsageError: For unknown names, unreachable URLs, or a space whose ranges or
            config are wrong, before any training.
    """
    in_memory = data is not None or space is not None
    config = _resolve(config, space, data)
    space = space or resolve_space(config.space)
    observer.stage("loading data")
    data = data or load_config_data(config)
    spec = model_spec(data, data.encode(None), int(config.max_epochs or 1))
    space.check_fits(spec, data.name)
    check_space(space, spec, config.seed, choose=getattr(data.encoder, "choose", None))
    objective = Objective.for_task(data.task, config.metric, tuple(config.objectives or ())[1:])
    class_weight = class_weights(config.class_weight, data)
    # The yardstick (tables and text) is fitted here, inside the budget and before the
    # plan, so its seconds are counted where the plan can see them.
    yardstick = None if worker else try_fit_baseline(data, objective.metric)
    # The first process measures before the study exists (a budget too small for one
    # trial leaves nothing behind); a worker opens the study first to take its plan.
    plan = None if worker else _measure(config, space, data, spec, objective, observer, started)
    _make_out(Path(str(config.out)))
    tracker = tracking.make_tracker(config.tracking_uri, str(config.study))
    study = _open_study(config, tracker, objective, worker)
    if plan is None:
        plan = adopt_plan(study, _deadline(config, started))
        if plan is not None:
            observer.plan_made(plan.describe())
        else:
            plan = _measure(config, space, data, spec, objective, observer, started, worker)
    plan = _one_run(plan, study, worker)
    record = StudyRecord.read(study)
    new = record is None and not study.trials
    if record is None and not worker:  # new, or made elsewhere: it records itself now
        record = StudyRecord.new(config, data.task, objective, in_memory=in_memory)
        record.write(study)
        if objective.multi:  # names in Optuna's dataframes and plots
            _name_objectives(study, objective)
    if record is not None:
        record.check_same_search(config, str(config.study))
        objective = record.objective(study)
    if not worker:
        grow = grower_for(space, data, spec, plan, objective, Limits.of(config))
        _enqueue_first_trials(study, space.starting_points(spec) if new else [], plan, grow)
    spec = dataclasses.replace(spec, metric=objective.metric)
    parent = _open_parent_run(study, tracker, config, data, worker)
    if not worker:  # the search's plan; a worker's own would overwrite it
        tracker.set_tags(parent, {"automl.plan": plan.describe()})
    return Session(
        config=config,
        data=data,
        spec=spec,
        space=space,
        objective=objective,
        study=study,
        tracker=tracker,
        parent_run=parent,
        class_weight=class_weight,
        in_memory=in_memory,
        plan=plan,
        started=started,
        ready=time.monotonic(),
        yardstick=yardstick,
    )


def _measure(
    config: SearchConfig,
    space: Space,
    data: Dataset,
    spec: ModelSpec,
    objective: Objective,
    observer: SearchObserver,
    started: float,
    worker: bool = False,
) -> Plan:
    """The plan phase (see `_plan`), said to the observer."""
    observer.stage("measuring this machine")
    plan = make_plan(
        space, data, spec, objective, seed=config.seed, deadline=_deadline(config, started),
        timeout=config.timeout, refuse=not worker, finishes=not worker,
        constrained=bool(config.max_params or config.max_latency_ms or objective.multi),
    )  # fmt: skip
    observer.plan_made(plan.describe())
    return plan


def _deadline(config: SearchConfig, started: float) -> float | None:
    """`time.monotonic()` at which this process's `--timeout` ends, or None."""
    return started + float(config.timeout) if config.timeout else None


def _one_run(plan: Plan, study: optuna.Study, worker: bool) -> Plan:
    """Every process of a search under its first process's token and resolution: that
    one records them (and its whole plan, see `_shared_plan`); workers (`--jobs`,
    `automl worker`, a recycled process) take them, so that the long trainings it
    enqueues are theirs too, not an earlier search's, and their exploration trials see
    images as its own do."""
    if not worker:  # "" when this search does not split: no earlier token lingers
        set_search_run(study, plan.split.run if plan.split else "", plan.explore_downsample)
        share_plan(study, plan)
        return plan
    plan = dataclasses.replace(plan, explore_downsample=search_explore_downsample(study))
    run = search_run(study)
    if plan.split is None or not run:
        return plan
    return dataclasses.replace(plan, split=dataclasses.replace(plan.split, run=run))


def _enqueue_first_trials(
    study: optuna.Study, points: list[dict[str, Any]], plan: Plan, grow: Grower | None = None
) -> None:
    """Enqueue a new study's starting points, and a budget without exploration's long
    training (see `_phases`): the first starting point (or its wider point, see `_grow`),
    or a resumed study's best configuration. The long training comes first, so that it
    gets the whole budget. (Such a budget is never constrained: see `make_plan`.)"""
    if plan.split is not None and not plan.split.explores:
        untried = points[0] if points else None
        start_exploiting(study, plan.split, untried=untried, grow=grow)
        points = points[1:]  # the first trains long; the rest run if time is left
    for point in points:
        study.enqueue_trial(point, user_attrs=TrialRecord.attrs(starting_point=True))


def _resolve(config: SearchConfig, space: Space | None, data: Dataset | None) -> SearchConfig:
    """The resolved config, labelled with in-memory objects' names; URLs reachable."""
    if config.jobs > 1 and (data is not None or space is not None):
        raise UsageError(
            "{jobs} > 1 needs a dataset name or path and a space name or file (worker "
            "processes rebuild them); pass those, or leave {jobs} at 1."
        )
    if data is not None:
        config = config.replace(dataset=data.name)
    if space is not None:
        config = config.replace(space=space.label)
    config = config.resolved(in_memory_data=data is not None)
    settings.check_all()  # a bad AUTOML_* variable stops here, before anything is opened
    check_storage_url(str(config.storage))
    if config.tracking_uri is not None:
        check_tracking_uri(config.tracking_uri)
    return config


def _make_out(out: Path) -> None:
    try:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create {{out}} {out} ({exc.strerror}); pass another folder."
        ) from None


def _open_study(
    config: SearchConfig, tracker: tracking.StudyTracker, objective: Objective, worker: bool
) -> optuna.Study:
    limits = Limits.of(config)
    return optuna.create_study(
        study_name=config.study,
        storage=make_storage(str(config.storage), on_stale_trial=tracker.close_lost_trial),
        # Workers sample from their own random streams: one seed would repeat points.
        sampler=make_sampler(
            config.sampler,
            None if worker else config.seed,
            shared=may_be_shared(str(config.storage), jobs=config.jobs, worker=worker),
            constraints=limits.violations if limits.active else None,
        ),
        pruner=make_pruner(config.pruner, int(config.max_epochs or 1)),
        directions=objective.directions,
        load_if_exists=True,
    )


def _name_objectives(study: optuna.Study, objective: Objective) -> None:
    import warnings

    with warnings.catch_warnings():  # experimental since Optuna 3.2
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(objective.names)


def _open_parent_run(
    study: optuna.Study,
    tracker: tracking.StudyTracker,
    config: SearchConfig,
    data: Dataset,
    worker: bool,
) -> str:
    """The study's one MLflow parent run: started (or resumed) by the process that
    created the study; a worker attaches to it and logs its trials under it."""
    recorded = mlflow_run_id(study)
    name = str(config.study)
    if worker:
        return tracker.attach(recorded, name)
    parent = tracker.start_study(recorded, name, _study_params(config, data))
    set_mlflow_run_id(study, parent)
    return parent


def _study_params(config: SearchConfig, data: Dataset) -> dict[str, Any]:
    names = ("space", "trials", "max_epochs", "sampler", "pruner", "seed", "patience")
    names += ("metric", "class_weight", "subset")
    return {
        **{name: getattr(config, name) for name in names},
        "timeout_s": config.timeout,
        "storage": mask_url(str(config.storage)),
        **data.describe(),
        **tracking.library_versions(),
    }


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
    from automl.spaces.whitening import image_sample

    normalization = None
    x = encoded.x_train
    if encoded.kind in ("vector", "sequence"):  # per feature, over rows (and timesteps)
        axes = tuple(range(x.ndim - 1))
        x = x[..., : x.shape[-1] - len(encoded.categories)]  # not the category ids
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
        # Raw pixels for layers fitted to the data (patch whitening), once per search.
        image_sample=image_sample(encoded.x_train, data.y_train, encoded.stream)
        if encoded.kind == "image"
        else None,
        # Token ids for layers fitted to the texts (the n-gram bag's table and idf).
        token_sample=encoded.x_train if encoded.kind == "text" else None,
        categories=encoded.categories,
    )


def _vocab_size(data: Dataset) -> int:
    """Token ids run from 0 to the largest id in any split (an unseen id must not overflow)."""
    return 1 + max(int(part.max()) for part in (data.x_train, data.x_val, data.x_test) if part.size)


def class_weights(option: str | None, data: Dataset) -> dict[int, float] | None:
    """scikit-learn's "balanced" weights (n / (classes * count)) for `class_weight`.

    Raises:
        UsageError: Class weights asked for a regression task.
    """
    if option is None:
        return None
    if data.task != "classification":
        raise UsageError("{class_weight} applies to classification only; leave it out.")
    from sklearn.utils.class_weight import compute_class_weight

    classes = np.arange(data.num_classes)
    weights = compute_class_weight(option, classes=classes, y=data.y_train)
    return {int(c): float(w) for c, w in zip(classes, weights, strict=True)}
