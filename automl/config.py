"""One frozen `SearchConfig`, from CLI flags, a Python call or a study's record.

Everything here is cheap: no TensorFlow, Optuna or MLflow imports, so that argument
errors answer instantly. `SearchConfig` only stores what it is given (the scikit-learn
habit); `resolved()` checks every field against the tables below, in one place, and
returns a new, complete config with every default filled in. The CLI and the Python API
share these defaults: the CLI passes only the flags a user gave.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path
from typing import Any

from automl import settings
from automl._errors import UsageError
from automl.objective import COSTS, METRICS

SAMPLERS = ("tpe", "random", "cmaes", "gp", "qmc")
PRUNERS = ("hyperband", "median", "sha", "none")
TASKS = ("binary", "multiclass", "classification", "regression")
DEFAULT_TRIALS = 20  # when neither trials nor timeout is given
# tracking_uri's default: $AUTOML_TRACKING_URI, else $MLFLOW_TRACKING_URI, else SQLite.
FROM_ENVIRONMENT = "from-environment"

_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | float | int | None) -> float | None:
    """Parse `1800`, `90s`, `30m`, `2h` or `1d` into seconds.

    Args:
        text: The duration; numbers are seconds; None means no limit.

    Returns:
        Seconds as a float, or None.

    Raises:
        UsageError: If the text is not a duration or is not positive.
    """
    if text is None:
        return None
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _DURATION.match(text)
        if not match:
            raise UsageError(f"{{timeout}} must look like 1800, 90s, 30m or 2h, but got {text!r}.")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise UsageError(f"{{timeout}} must be positive, but got {text!r}.")
    return seconds


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Everything one search needs, as plain values.

    Attributes:
        dataset: A built-in dataset name, a path (a table, an image folder, an `.npz`
            file), or the name of in-memory data.
        space: A built-in space name, `file.py:function`, `package.module:function`, or
            a .toml/.yaml space config; None picks the dataset's default (`auto`).
        trials: Total trials the study may hold (finished ones from earlier runs count);
            None: no count limit with a timeout, else `DEFAULT_TRIALS`.
        timeout: Wall-clock budget of this run: seconds, or "90s", "30m", "2h"; None: none.
        max_epochs: Epoch cap per trial; None picks a default for the dataset.
        sampler: One of `SAMPLERS`.
        pruner: One of `PRUNERS`.
        seed: Seed for the sampler, the data split and each trial's weights.
        study: Optuna study name; derived from dataset and space when None.
        storage: Optuna storage URL (any SQLAlchemy URL); None: `$AUTOML_STORAGE`, else
            `sqlite:///automl.db`.
        tracking_uri: MLflow tracking URI; None or "none" logs nothing to MLflow; the
            default takes `$AUTOML_TRACKING_URI`, else `$MLFLOW_TRACKING_URI`, else
            `sqlite:///mlflow.db`.
        out: Output folder; `./automl-out/<study>` when None.
        data_dir: Folder holding local copies of datasets.
        patience: Early-stopping patience in epochs; None picks max(3, max_epochs // 5).
        target: The column to predict, for tables and texts.
        text_column: The column holding text, for text tables.
        task: "binary", "multiclass", "classification" or "regression"; None detects it.
        metric: The validation metric trials are scored on (a key of `METRICS`); None
            means accuracy, or RMSE for regression.
        class_weight: "balanced" weighs classes inversely to their frequency; None
            weighs every example the same.
        subset: Train trials on this stratified fraction of the training split (low
            fidelity) and promote the best to all of it; None trains on all of it.
        jobs: Worker processes on this machine sharing the study (1: this process only).
        max_params: Reject, before training, a model with more parameters; None: no limit.
        max_latency_ms: Reject, before training, a model slower than this many
            milliseconds per example (median CPU `predict` on one example, on this
            machine); None: no limit.
        objectives: A multi-objective study: the validation metric first
            ("val_accuracy"), then costs to minimize (names of `COSTS`), as a tuple or
            one comma-separated string; None: the metric alone.
    """

    dataset: str
    space: str | None = None
    trials: int | None = None
    timeout: float | str | None = None
    max_epochs: int | None = None
    sampler: str = "tpe"
    pruner: str = "hyperband"
    seed: int | None = 0
    study: str | None = None
    storage: str | None = None
    tracking_uri: str | None = FROM_ENVIRONMENT
    out: Path | str | None = None
    data_dir: Path | str | None = None
    patience: int | None = None
    target: str | None = None
    text_column: str | None = None
    task: str | None = None
    metric: str | None = None
    class_weight: str | None = None
    subset: float | None = None
    jobs: int = 1
    max_params: int | None = None
    max_latency_ms: float | None = None
    objectives: tuple[str, ...] | str | None = None

    def resolved(self, *, in_memory_data: bool = False) -> SearchConfig:
        """A new config with every rule checked and every default filled in.

        Resolving a resolved config gives the same config. The caller's config is
        never changed.

        Args:
            in_memory_data: The data comes as arrays, not a built-in name or a path.

        Raises:
            UsageError: On the first field that breaks a rule, naming it and the fix.
        """
        _check_names(self, in_memory_data)
        _check_numbers(self)
        objectives = parse_objectives(self.objectives, self.metric)
        if objectives and self.sampler == "cmaes":
            raise UsageError(
                "{sampler} cmaes cannot search several {objectives}; pick tpe, gp, random or qmc."
            )
        metric = objectives[0].removeprefix("val_") if objectives else self.metric
        return dataclasses.replace(self, **_defaults(self), objectives=objectives, metric=metric)

    def replace(self, **changes: Any) -> SearchConfig:
        """A copy with `changes` (the config itself is frozen)."""
        return dataclasses.replace(self, **changes)


def parse_objectives(
    objectives: tuple[str, ...] | list[str] | str | None, metric: str | None
) -> tuple[str, ...] | None:
    """`--objectives`: the validation metric first, then distinct costs (`COSTS`).

    Raises:
        UsageError: Naming the valid objectives.
    """
    if objectives is None:
        return None
    if isinstance(objectives, str):
        objectives = objectives.split(",")
    names = tuple(name.strip() for name in objectives)
    valid = (
        f"the validation metric first (val_{', val_'.join(METRICS)}), then one or more "
        f"of {', '.join(COSTS)}"
    )
    first, costs = (names[0], names[1:]) if names else ("", ())
    if first.removeprefix("val_") not in METRICS or not first.startswith("val_"):
        raise UsageError(f"{{objectives}} must name {valid}; but got {','.join(names)!r}.")
    unknown = [name for name in costs if name not in COSTS]
    if not costs or unknown or len(set(costs)) != len(costs):
        raise UsageError(f"{{objectives}} must name {valid}; but got {','.join(names)!r}.")
    if metric is not None and first != f"val_{metric}":
        raise UsageError(
            f"{{metric}} {metric} and {{objectives}} {first} disagree; leave out {{metric}} "
            f"(the first objective is the metric)."
        )
    return names


def _check_names(config: SearchConfig, in_memory_data: bool) -> None:
    """Rules on names: dataset, space, task, metric, sampler, pruner, class weight."""
    from automl.data import DATASETS, TABLE_SUFFIXES
    from search_spaces import check_space_name

    if not in_memory_data and config.dataset not in DATASETS:
        _check_data_path(config)
    if config.text_column and not config.dataset.lower().endswith(TABLE_SUFFIXES):
        raise UsageError("{text_column} needs a table (.csv, .tsv, .parquet) of texts.")
    if config.task is not None and config.task not in TASKS:
        raise UsageError(f"{{task}} must be one of {', '.join(TASKS)}, but got {config.task!r}.")
    if config.metric is not None and config.metric not in METRICS:
        raise UsageError(f"unknown metric {config.metric!r}; choose one of: {', '.join(METRICS)}.")
    if config.class_weight not in (None, "balanced"):
        raise UsageError(
            f"{{class_weight}} must be 'balanced', but got {config.class_weight!r}; leave it "
            f"out to weigh every example the same."
        )
    if config.space is not None:
        check_space_name(config.space)
    if config.sampler not in SAMPLERS:
        raise UsageError(
            f"unknown sampler {config.sampler!r}; choose one of: {', '.join(SAMPLERS)}."
        )
    if config.sampler == "gp" and importlib.util.find_spec("torch") is None:
        raise UsageError(
            "{sampler} gp needs PyTorch: pip install 'automl[gp]' (or torch), or pick "
            "another sampler."
        )
    if config.pruner not in PRUNERS:
        raise UsageError(f"unknown pruner {config.pruner!r}; choose one of: {', '.join(PRUNERS)}.")
    _check_folders(config)


def _check_numbers(config: SearchConfig) -> None:
    """Rules on counts and fractions (the timeout is parsed with the defaults)."""
    if config.subset is not None and not 0 < config.subset < 1:
        raise UsageError(
            f"{{subset}} must be a fraction between 0 and 1 (e.g. 0.25), but got {config.subset}."
        )
    if not isinstance(config.jobs, int) or config.jobs < 1:
        raise UsageError(f"{{jobs}} must be a whole number of at least 1, but got {config.jobs!r}.")
    for name in ("trials", "max_epochs", "patience", "max_params"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise UsageError(f"{{{name}}} must be at least 1, but got {value}.")
    latency = config.max_latency_ms
    if latency is not None and not (isinstance(latency, int | float) and latency > 0):
        raise UsageError(
            f"{{max_latency_ms}} must be a positive number of milliseconds, but got {latency!r}."
        )


def _check_folders(config: SearchConfig) -> None:
    """`data_dir` must be a folder; `out` must not lie inside a file."""
    if config.data_dir is not None and not Path(config.data_dir).is_dir():
        raise UsageError(
            f"{{data_dir}} {config.data_dir} is not a folder; pass the folder that holds the "
            f"local dataset copy."
        )
    if config.out is not None:
        out = Path(config.out)
        existing = next(p for p in (out, *out.parents) if p.exists())
        if not existing.is_dir():
            raise UsageError(f"{{out}} {config.out}: {existing} is a file; pass a folder.")


def _defaults(config: SearchConfig) -> dict[str, Any]:
    """Every field that is still open, filled in from the dataset's row and the
    environment (`automl.settings`)."""
    from automl.data import DATASETS

    info = DATASETS.get(config.dataset)
    timeout = parse_duration(config.timeout)
    space = config.space or (info.default_space if info else "auto")
    max_epochs = config.max_epochs or (info.default_epochs if info else 20)
    study = config.study or f"{_data_slug(config.dataset)}-{_space_slug(space)}"
    tracking_uri = config.tracking_uri
    if tracking_uri == FROM_ENVIRONMENT:
        tracking_uri = settings.tracking_uri()
    elif tracking_uri is not None:
        tracking_uri = settings.tracking_uri(tracking_uri)  # "none" -> None
    return {
        "space": space,
        "trials": DEFAULT_TRIALS if config.trials is None and timeout is None else config.trials,
        "timeout": timeout,
        "max_epochs": max_epochs,
        "patience": config.patience or max(3, max_epochs // 5),
        "study": study,
        "storage": settings.storage_url(config.storage),
        "tracking_uri": tracking_uri,
        "out": Path(config.out) if config.out is not None else Path("automl-out") / study,
        "data_dir": Path(config.data_dir) if config.data_dir is not None else None,
    }


def _check_data_path(config: SearchConfig) -> None:
    """A dataset that is not a built-in name must be a readable table, folder or .npz."""
    from automl.data import ARRAY_SUFFIXES, DATASETS, TABLE_SUFFIXES

    path = Path(config.dataset)
    if not path.exists():
        looks_like_path = "/" in config.dataset or path.suffix
        raise UsageError(
            f"no such file or folder: {config.dataset}; check the path."
            if looks_like_path
            else f"unknown dataset {config.dataset!r}; choose one of: {', '.join(DATASETS)}, "
            f"or pass a path to a table, an image folder or an .npz file."
        )
    suffix = path.suffix.lower()
    if path.is_file() and suffix not in TABLE_SUFFIXES + ARRAY_SUFFIXES:
        raise UsageError(
            f"{config.dataset}: cannot read {suffix or 'extensionless'} files; pass a table "
            f"({', '.join(TABLE_SUFFIXES)}), an .npz file or an image folder."
        )
    if suffix in TABLE_SUFFIXES and not config.target:
        raise UsageError(
            f"{config.dataset} is a table: pass {{target}} COLUMN to name the column to predict."
        )


def _data_slug(dataset: str) -> str:
    """A study-name-safe short form of a dataset: a built-in name, or a path's stem."""
    if "/" not in dataset and not Path(dataset).suffix:
        return dataset
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(dataset).stem or "data")


def _space_slug(space: str) -> str:
    """A file-name-safe short form: `spaces/mine.py:build` -> `mine.build`."""
    from automl.spaces._resolve import CONFIG_SUFFIXES, space_file

    if space.endswith(CONFIG_SUFFIXES):
        return Path(space).stem
    target, _, attr = space.rpartition(":")
    if not target:
        return space
    stem = Path(target).stem if space_file(space) else target.rsplit(".", 1)[-1]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{stem}.{attr}")
