"""What a study and its trials store about themselves, in Optuna's user attributes.

`StudyRecord` is the typed owner of the study's facts: what a new study records, what
`show`, `export`, `refit` and a resumed run read back, and what `automl worker` rebuilds
its configuration from. `TrialRecord` does the same for one trial. No other module
names a user-attribute key. What Optuna already keeps (the direction, params, values,
states) is read from Optuna, never stored twice.

Studies written by automl 0.3.0 (one attribute per fact, plus a "config" copy) still
read: `StudyRecord.read` falls back to that layout.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from automl._errors import UsageError
from automl.config import SearchConfig
from automl.objective import Objective, score

if TYPE_CHECKING:
    import optuna

RECORD_KEY = "automl"
FORMAT = 1
MLFLOW_RUN_KEY = "mlflow_run_id"
REGISTERED_KEY = "registered_trial"
SEARCH_RUN_KEY = "search_run"
EXPLORE_DOWNSAMPLE_KEY = "explore_downsample"
SEARCH_PLAN_KEY = "search_plan"
# SearchConfig fields a study records (no URLs: they may hold passwords; no folders of
# this machine but data_dir, which a worker may override).
RECORDED = (
    "dataset",
    "space",
    "trials",
    "timeout",
    "max_epochs",
    "sampler",
    "pruner",
    "seed",
    "patience",
    "target",
    "text_column",
    "task",
    "metric",
    "class_weight",
    "subset",
    "data_dir",
    "max_params",
    "max_latency_ms",
    "objectives",
)


@dataclasses.dataclass(frozen=True)
class StudyRecord:
    """What a study is: recorded once, when it is created.

    Attributes:
        config: The resolved configuration's recorded fields (`RECORDED`); the others
            keep their defaults.
        task: The task the data has ("classification" or "regression").
        monitor: The metric trials are scored on ("val_accuracy").
        in_memory: Searched in-memory data or a space object (no worker can rebuild it).
        created: When, as ISO 8601 local time.
    """

    config: SearchConfig
    task: str
    monitor: str
    in_memory: bool = False
    created: str = ""

    @classmethod
    def new(
        cls, config: SearchConfig, task: str, objective: Objective, *, in_memory: bool
    ) -> StudyRecord:
        """The record of a study about to be created from the resolved `config`."""
        recorded = {name: getattr(config, name) for name in RECORDED}
        recorded["data_dir"] = str(config.data_dir) if config.data_dir else None
        return cls(
            config=SearchConfig(**recorded),
            task=task,
            monitor=objective.monitor,
            in_memory=in_memory,
            created=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )

    def write(self, study: optuna.Study) -> None:
        """Store the record in the study (one attribute, one write)."""
        config = {name: getattr(self.config, name) for name in RECORDED}
        study.set_user_attr(
            RECORD_KEY,
            {
                "format": FORMAT,
                "config": config,
                "task": self.task,
                "monitor": self.monitor,
                "in_memory": self.in_memory,
                "created": self.created,
            },
        )

    @classmethod
    def read(cls, study: optuna.Study) -> StudyRecord | None:
        """The study's record, or None for a study automl did not create."""
        attrs = study.user_attrs
        stored = attrs.get(RECORD_KEY)
        if stored is not None:
            config = {k: v for k, v in stored["config"].items() if k in RECORDED}
            return cls(
                config=SearchConfig(**config),
                task=stored["task"],
                monitor=stored["monitor"],
                in_memory=bool(stored.get("in_memory")),
                created=stored.get("created", ""),
            )
        if "metric" not in attrs:
            return None
        return cls._read_0_3(attrs)

    @classmethod
    def _read_0_3(cls, attrs: dict[str, Any]) -> StudyRecord:
        """automl 0.3.0: one attribute per fact, the full configuration under "config"."""
        config = dict(attrs.get("config") or {})
        in_memory = bool(config.pop("in_memory", False))
        for name in ("dataset", "space", "max_epochs", "seed", "data_dir"):
            config.setdefault(name, attrs.get(name))
        config = {name: config.get(name) for name in RECORDED if name in config}
        return cls(
            config=SearchConfig(**config),
            task=attrs.get("task", "classification"),
            monitor=attrs["metric"],
            in_memory=in_memory,
            created=attrs.get("created", ""),
        )

    @classmethod
    def of(cls, study: optuna.Study) -> StudyRecord:
        """The record of a study automl made.

        Raises:
            UsageError: The study records nothing (made by hand or by another tool).
        """
        record = cls.read(study)
        if record is None:
            raise UsageError(
                f"study {study.study_name!r} records no configuration (made by an older "
                f"automl or by hand); start a new study under another {{study}} name."
            )
        return record

    @property
    def dataset(self) -> str:
        """The dataset the study searches (a built-in name, a path or a label)."""
        return self.config.dataset

    @property
    def space(self) -> str:
        """The space the study searches (a built-in name, a reference or a label)."""
        return str(self.config.space)

    def objective(self, study: optuna.Study) -> Objective:
        """The metric trials are scored on, with the direction Optuna keeps, and the
        costs of a multi-objective study."""
        return Objective.of_study(study, self.monitor, tuple(self.config.objectives or ())[1:])

    def rebuild_config(self, **changes: Any) -> SearchConfig:
        """The configuration a worker runs with: the recorded one plus `changes`
        (study, storage, tracking URI, output folder, ...), resolved.

        Raises:
            UsageError: The study searches in-memory data or a space object.
        """
        if self.in_memory:
            raise UsageError(
                "this study searches in-memory data or a space object; workers need a "
                "dataset name or path and a space name or file."
            )
        return self.config.replace(**changes).resolved()

    def check_same_search(self, config: SearchConfig, study_name: str) -> None:
        """Refuse to resume a study with another dataset, space or metric.

        Raises:
            UsageError: Naming what differs and the fix.
        """
        for name in ("dataset", "space"):
            recorded, asked = getattr(self.config, name), getattr(config, name)
            if recorded is not None and recorded != asked:
                raise UsageError(
                    f"study {study_name!r} was created for {name} {recorded!r}, not "
                    f"{asked!r}; pass another {{study}} to start a new one."
                )
        if config.metric is not None and f"val_{config.metric}" != self.monitor:
            raise UsageError(
                f"study {study_name!r} scores trials on {self.monitor}, not "
                f"val_{config.metric}; pass another {{study}} to start a new one."
            )
        recorded, asked = tuple(self.config.objectives or ()), tuple(config.objectives or ())
        if recorded != asked:
            raise UsageError(
                f"study {study_name!r} optimizes {','.join(recorded) or self.monitor}, not "
                f"{','.join(asked) or self.monitor}; pass another {{study}} to start a new one."
            )


def mlflow_run_id(study: optuna.Study) -> str | None:
    """The study's MLflow parent run (None before the first run started one)."""
    return study.user_attrs.get(MLFLOW_RUN_KEY)


def set_mlflow_run_id(study: optuna.Study, run_id: str) -> None:
    """Remember the study's MLflow parent run, for resumed runs and workers."""
    study.set_user_attr(MLFLOW_RUN_KEY, run_id)


def search_run(study: optuna.Study) -> str | None:
    """The token of the search now running this study (its explore/exploit split's)."""
    return study.user_attrs.get(SEARCH_RUN_KEY)


def set_search_run(study: optuna.Study, run: str, explore_downsample: int = 1) -> None:
    """Remember the running search's token and how much its exploration trials
    downsample images, for its workers' plans."""
    study.set_user_attr(SEARCH_RUN_KEY, run)
    study.set_user_attr(EXPLORE_DOWNSAMPLE_KEY, explore_downsample)


def search_explore_downsample(study: optuna.Study) -> int:
    """How much the running search's exploration trials downsample images (1: not)."""
    return int(study.user_attrs.get(EXPLORE_DOWNSAMPLE_KEY) or 1)


def search_plan(study: optuna.Study) -> dict[str, Any] | None:
    """The running search's plan as its first process shared it (see
    `automl.engine._shared_plan`), or None."""
    return study.user_attrs.get(SEARCH_PLAN_KEY)


def set_search_plan(study: optuna.Study, facts: dict[str, Any] | None) -> None:
    """Share the running search's plan with its workers (None: nothing to share)."""
    study.set_user_attr(SEARCH_PLAN_KEY, facts)


def registered_trial(study: optuna.Study) -> int | None:
    """The trial whose model was last registered in MLflow's model registry."""
    return study.user_attrs.get(REGISTERED_KEY)


def set_registered_trial(study: optuna.Study, number: int) -> None:
    """Remember that trial `number`'s model is registered."""
    study.set_user_attr(REGISTERED_KEY, number)


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """What one trial stores beside Optuna's own fields.

    Attributes:
        seed: The seed its weights and data order started from.
        worker: `host:pid` of the process that ran it.
        epochs: Epochs it trained.
        best_epoch: The epoch (1-based) whose weights were kept.
        val_loss: The validation loss at that epoch: among trials tied on the metric,
            the lower one ranks first (see `engine._checkpoints`).
        seconds: Wall-clock seconds it took.
        rss_mb: Its process's resident memory after it, in MB.
        reason: Why it was pruned or failed.
        fidelity: Fraction of the training split it trained on.
        downsample: Its model averaged images down by this factor per side before its
            layers (an exploration trial at lower resolution, see
            `automl.engine._resolution`); None: full size.
        planned_epochs: The epochs it was planned for (the cap, or what fit the time).
        planned_epoch_s: Its seconds per epoch as planned, when planned to the time.
        estimated_epoch_s: The same before calibration on earlier trials (see `_plan`).
        skipped_epochs: Planned epochs it gave up because its epochs ran slower than
            planned, its schedule squeezed into the rest (see
            `engine._callbacks.ScheduleToTime`).
        stretched_epochs: Epochs it ran beyond its plan because they ran faster than
            planned, its schedule stretched over them (the same callback).
        model_path: Its saved model, while it is among the best (ensemble candidates),
            on the machine that trained it.
        model_artifact: The same model in MLflow's artifact store (a `runs:/` URI), for
            every machine (see `automl.tracking._artifacts`); None when the upload failed.
        model_store: The tracking store that holds it (credentials masked).
        mlflow_run_id: Its MLflow run.
        starting_point: Enqueued from the space's starting points.
        promoted_from: The trial whose configuration it trains again: on all the data
            (`--subset`), or for longer (`exploit`).
        exploit: One of the long trainings of the best configurations (see `_phases`).
        exploit_run: The token of the search that enqueued it.
        grown_from: A long training of a wider point of its configuration (the
            space's `grow`), since its time held enough of that model's epochs
            (`engine._grow`): the configuration's own params, which train in its place
            if its first epoch shows that too few of its epochs fit (`_grow.GrownPace`).
        space_failed: It failed in the space itself (not in training).
        failed_in_training: It diverged or ran out of memory; stored as PRUNED so that
            the sampler avoids its point, and counted as failed.
        n_params: Its model's parameter count (see `automl.footprint`).
        size_mb: Its model's `.keras` file size in MB, as built.
        latency_ms: Its model's median CPU milliseconds for one example.
        infeasible: Its model broke `--max-params` or `--max-latency-ms` and was never
            trained; stored as PRUNED so that the sampler learns the limits, and
            counted as failed.
        curve: Its validation value after each epoch (None where not finite), kept in
            multi-objective studies, whose pruning compares curves (`engine._pareto`).
    """

    seed: int | None = None
    worker: str | None = None
    epochs: int | None = None
    best_epoch: int | None = None
    val_loss: float | None = None
    seconds: float | None = None
    rss_mb: float | None = None
    reason: str = ""
    fidelity: float | None = None
    downsample: int | None = None
    planned_epochs: int | None = None
    planned_epoch_s: float | None = None
    estimated_epoch_s: float | None = None
    skipped_epochs: int | None = None
    stretched_epochs: int | None = None
    model_path: str | None = None
    model_artifact: str | None = None
    model_store: str | None = None
    mlflow_run_id: str | None = None
    starting_point: bool = False
    promoted_from: int | None = None
    exploit: bool = False
    exploit_run: str | None = None
    grown_from: dict[str, Any] | None = None
    space_failed: bool = False
    failed_in_training: bool = False
    n_params: int | None = None
    size_mb: float | None = None
    latency_ms: float | None = None
    infeasible: bool = False
    curve: list[float | None] | None = None

    MODEL_PATH: ClassVar[str] = "model_path"  # the field's attribute name, for dataframes

    @classmethod
    def read(cls, trial: optuna.trial.FrozenTrial | optuna.trial.BaseTrial) -> TrialRecord:
        """The facts `trial` stores (defaults for those it does not)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in trial.user_attrs.items() if k in known})

    @staticmethod
    def attrs(**facts: Any) -> dict[str, Any]:
        """Facts as user attributes (for `study.enqueue_trial(..., user_attrs=...)`).

        Raises:
            TypeError: A name that is no field (a typo would be silently unread).
        """
        known = {f.name for f in dataclasses.fields(TrialRecord)}
        unknown = set(facts) - known
        if unknown:
            raise TypeError(f"TrialRecord has no field {', '.join(map(repr, sorted(unknown)))}.")
        return facts

    @staticmethod
    def write(trial: optuna.Trial, **facts: Any) -> None:
        """Store facts of a running trial; names are `TrialRecord` fields."""
        for name, value in TrialRecord.attrs(**facts).items():
            trial.set_user_attr(name, value)

    @property
    def grown(self) -> bool:
        """A long training of a wider point of its configuration (see `grown_from`)."""
        return self.grown_from is not None

    @property
    def counts_as_failed(self) -> bool:
        """Stored as PRUNED for the sampler's sake, shown and counted as failed."""
        return self.failed_in_training or self.infeasible

    @property
    def model_file(self) -> Path | None:
        """The saved model's path, when there is one on disk."""
        path = Path(self.model_path) if self.model_path else None
        return path if path is not None and path.is_file() else None


def fixed_attr(name: str) -> str:
    """The attribute under which a trial keeps an `hp.Fixed` value it never sampled."""
    return f"fixed_{name}"


def tie_loss(trial: optuna.trial.FrozenTrial | optuna.trial.BaseTrial) -> float:
    """What breaks ties on the metric between trials: the validation loss at the best
    epoch (infinite where a trial did not record one)."""
    loss = TrialRecord.read(trial).val_loss
    return math.inf if loss is None else loss


def ranked_complete(
    study: optuna.Study, objective: Objective | None = None
) -> list[optuna.trial.FrozenTrial]:
    """The complete trials, best first on the metric (first objective); ties go to the
    lower `tie_loss`, then the earlier trial. `objective`: the study's own by default."""
    objective = objective or Objective.of_study(study)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    return objective.ranked(complete, score, tie_loss)


def ranked_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """A study's trials as leaderboards show them: complete ones best first (see
    `ranked_complete`), then the others by number."""
    others = [t for t in study.get_trials(deepcopy=False) if t.state.name != "COMPLETE"]
    return ranked_complete(study) + others
