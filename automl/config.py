"""One validated `SearchConfig`, built from CLI flags or Python keywords.

Everything here is cheap: no TensorFlow, Optuna or MLflow imports, so that argument
errors answer instantly. Validation happens once, in `SearchConfig.validate`, against the
tables below (the scikit-learn habit: constructors store, one place checks).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from automl._errors import UsageError

SAMPLERS = ("tpe", "random", "cmaes", "gp", "qmc")
PRUNERS = ("hyperband", "median", "sha", "none")
# --metric name -> (tasks it applies to, direction of better).
METRICS: dict[str, tuple[tuple[str, ...], str]] = {
    "accuracy": (("classification",), "maximize"),
    "auc": (("classification",), "maximize"),
    "f1": (("classification",), "maximize"),
    "rmse": (("regression",), "minimize"),
    "mse": (("regression",), "minimize"),
    "mae": (("regression",), "minimize"),
    "r2": (("regression",), "maximize"),
    "loss": (("classification", "regression"), "minimize"),
}
TASKS = ("binary", "multiclass", "classification", "regression")
TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".parquet", ".pq")
ARRAY_SUFFIXES = (".npz",)
DEFAULT_STORAGE = "sqlite:///automl.db"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

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
            raise UsageError(f"--timeout must look like 1800, 90s, 30m or 2h, but got {text!r}.")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise UsageError(f"--timeout must be positive, but got {text!r}.")
    return seconds


def mask_url(url: str) -> str:
    """Hide the password in a URL (`postgresql://bob:secret@db/x` -> `bob:***@db/x`)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@dataclasses.dataclass
class SearchConfig:
    """Everything one search needs, as plain values.

    Attributes:
        dataset: A built-in dataset name, a path (a table, an image folder, an `.npz`
            file), or the name of in-memory data.
        space: A built-in space name, `file.py:function`, `package.module:function`, or
            a .toml/.yaml space config; None picks the dataset's default (`auto`).
        trials: Total trials the study may hold (finished ones from earlier runs count).
        timeout: Wall-clock seconds for this run, or None.
        max_epochs: Epoch cap per trial; None picks a default for the dataset.
        sampler: One of `SAMPLERS`.
        pruner: One of `PRUNERS`.
        seed: Seed for the sampler, the data split and each trial's weights.
        study: Optuna study name; derived from dataset and space when None.
        storage: Optuna storage URL (any SQLAlchemy URL).
        tracking_uri: MLflow tracking URI; None logs nothing to MLflow.
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
    """

    dataset: str
    space: str | None = None
    trials: int | None = 20
    timeout: float | None = None
    max_epochs: int | None = None
    sampler: str = "tpe"
    pruner: str = "hyperband"
    seed: int | None = 0
    study: str | None = None
    storage: str = DEFAULT_STORAGE
    tracking_uri: str | None = DEFAULT_TRACKING_URI
    out: Path | None = None
    data_dir: Path | None = None
    patience: int | None = None
    target: str | None = None
    text_column: str | None = None
    task: str | None = None
    metric: str | None = None
    class_weight: str | None = None
    subset: float | None = None
    jobs: int = 1

    def validate(self, *, in_memory_data: bool = False) -> SearchConfig:
        """Check every field against the rules and fill derived defaults.

        Args:
            in_memory_data: The data comes as arrays, not a built-in dataset name.

        Returns:
            self, with `study` and `out` filled in.

        Raises:
            UsageError: On the first field that breaks a rule, naming it and the fix.
        """
        from automl.data import DATASETS
        from automl.spaces._resolve import check_space_name

        if not in_memory_data and self.dataset not in DATASETS:
            self._check_data_path()
        if self.text_column and not self.dataset.lower().endswith(TABLE_SUFFIXES):
            raise UsageError("--text-column needs a table (.csv, .tsv, .parquet) of texts.")
        if self.task is not None and self.task not in TASKS:
            raise UsageError(f"--task must be one of {', '.join(TASKS)}, but got {self.task!r}.")
        if self.metric is not None and self.metric not in METRICS:
            raise UsageError(
                f"unknown metric {self.metric!r}; choose one of: {', '.join(METRICS)}."
            )
        if self.subset is not None and not 0 < self.subset < 1:
            raise UsageError(
                f"--subset must be a fraction between 0 and 1 (e.g. 0.25), but got {self.subset}."
            )
        if self.class_weight not in (None, "balanced"):
            raise UsageError(
                f"--class-weight must be 'balanced', but got {self.class_weight!r}; leave it "
                f"out to weigh every example the same."
            )
        if self.space is not None:
            check_space_name(self.space)
        if not isinstance(self.jobs, int) or self.jobs < 1:
            raise UsageError(f"--jobs must be a whole number of at least 1, but got {self.jobs!r}.")
        if self.trials is not None and self.trials < 1:
            raise UsageError(f"--trials must be at least 1, but got {self.trials}.")
        if self.trials is None and self.timeout is None:
            raise UsageError("give --trials, --timeout or both, so the search knows when to stop.")
        self.timeout = parse_duration(self.timeout)
        if self.max_epochs is not None and self.max_epochs < 1:
            raise UsageError(f"--max-epochs must be at least 1, but got {self.max_epochs}.")
        if self.patience is not None and self.patience < 1:
            raise UsageError(f"--patience must be at least 1, but got {self.patience}.")
        if self.sampler not in SAMPLERS:
            raise UsageError(
                f"unknown sampler {self.sampler!r}; choose one of: {', '.join(SAMPLERS)}."
            )
        if self.sampler == "gp" and importlib.util.find_spec("torch") is None:
            raise UsageError(
                "--sampler gp needs PyTorch: pip install 'automl[gp]' (or torch), or pick "
                "another sampler."
            )
        if self.data_dir is not None and not Path(self.data_dir).is_dir():
            raise UsageError(
                f"--data-dir {self.data_dir} is not a folder; pass the folder that holds the "
                f"local dataset copy."
            )
        if self.out is not None:
            out = Path(self.out)
            existing = next(p for p in (out, *out.parents) if p.exists())
            if not existing.is_dir():
                raise UsageError(f"--out {self.out}: {existing} is a file; pass a folder.")
        if self.pruner not in PRUNERS:
            raise UsageError(
                f"unknown pruner {self.pruner!r}; choose one of: {', '.join(PRUNERS)}."
            )
        info = DATASETS.get(self.dataset)
        if self.space is None:
            self.space = info.default_space if info else "auto"
        if self.max_epochs is None:
            self.max_epochs = info.default_epochs if info else 20
        if self.patience is None:
            self.patience = max(3, self.max_epochs // 5)
        if self.study is None:
            self.study = f"{_data_slug(self.dataset)}-{_space_slug(self.space)}"
        if self.out is None:
            self.out = Path("automl-out") / self.study
        self.out = Path(self.out)
        if self.data_dir is not None:
            self.data_dir = Path(self.data_dir)
        return self

    def _check_data_path(self) -> None:
        """A dataset that is not a built-in name must be a readable table, folder or .npz."""
        from automl.data import DATASETS

        path = Path(self.dataset)
        if not path.exists():
            looks_like_path = "/" in self.dataset or path.suffix
            raise UsageError(
                f"no such file or folder: {self.dataset}; check the path."
                if looks_like_path
                else f"unknown dataset {self.dataset!r}; choose one of: {', '.join(DATASETS)}, "
                f"or pass a path to a table, an image folder or an .npz file."
            )
        suffix = path.suffix.lower()
        if path.is_file() and suffix not in TABLE_SUFFIXES + ARRAY_SUFFIXES:
            raise UsageError(
                f"{self.dataset}: cannot read {suffix or 'extensionless'} files; pass a table "
                f"({', '.join(TABLE_SUFFIXES)}), an .npz file or an image folder."
            )
        if suffix in TABLE_SUFFIXES and not self.target:
            raise UsageError(
                f"{self.dataset} is a table: pass --target COLUMN to name the column to predict."
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
