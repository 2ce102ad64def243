"""Shared fixtures: real searches run once per session, a small CIFAR-10 slice, CLI helpers.

Everything runs on real components: SQLite files in temporary folders for Optuna and
MLflow, real Keras training on scikit-learn's iris/digits and on a slice of CIFAR-10
unpacked from `../shared/data/cifar10-jpg.tar.xz`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from automl.data._keras import CLASS_NAMES
from automl.engine import SearchObserver

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
CIFAR_ARCHIVE = SHARED_DATA / "cifar10-jpg.tar.xz"
CIFAR_CLASSES = CLASS_NAMES["cifar10"]
# Per class. 130 training images leave 1,040 rows after the validation split: enough for
# the cnn space to offer batch size 128, which its second starting point uses.
CIFAR_TRAIN_PER_CLASS = 130
CIFAR_TEST_PER_CLASS = 20

# Quiet TensorFlow's C++ logs here and in every subprocess the tests start.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def in_ci() -> bool:
    """True when the CI variable says so (`CI=true`, as CI services set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing(what: str, fix: str) -> None:
    """A component the README promises is absent: outside CI the test is skipped, saying
    what is missing and how to get it; under `CI=true` it FAILS in one line, so CI never
    passes without checking what it promised."""
    if in_ci():
        pytest.fail(f"CI=true, but this is missing: {what} ({fix})", pytrace=False)
    pytest.skip(f"missing: {what} ({fix})")


def sqlite_url(path: Path) -> str:
    """A SQLAlchemy/MLflow URL for a SQLite file at an absolute path."""
    return f"sqlite:///{Path(path).resolve()}"


_mlflow_template: Path | None = None


def mlflow_url(path: Path) -> str:
    """A SQLite URL for MLflow at `path`; a new file there starts as a copy of one that
    MLflow created and migrated earlier in this session. MLflow's schema migrations take
    3-7 s per new file on this machine and the suites open dozens; a copy takes 0.1 s.
    A file that MLflow creates from nothing is still tested (test_environment's searches
    and the slow CLI runs, which name it with `sqlite_url`)."""
    global _mlflow_template
    path = Path(path)
    if not path.exists():
        if _mlflow_template is None:
            import mlflow

            template = Path(tempfile.mkdtemp(prefix="automl-mlflow-")) / "mlflow.db"
            mlflow.MlflowClient(sqlite_url(template)).search_experiments()
            _mlflow_template = template
        shutil.copyfile(_mlflow_template, path)
    return sqlite_url(path)


# Variables of the caller's that would redirect tests to their own data, storage or MLflow.
CALLER_VARIABLES = (
    "AUTOML_DATA_DIR",
    "AUTOML_STORAGE",
    "AUTOML_TRACKING_URI",
    "MLFLOW_TRACKING_URI",
)


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for CLI subprocesses: no local data folder, storage or tracking
    server leaks in from the caller."""
    env = {k: v for k, v in os.environ.items() if k not in CALLER_VARIABLES}
    env.update(extra)
    return env


def run_cli(
    *args: str, cwd: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m automl ARGS` in `cwd` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "automl", *map(str, args)],
        cwd=cwd,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class RecordingObserver(SearchObserver):
    """A `SearchObserver` that keeps every event, to check what the engine reports."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def stage(self, text: str) -> None:
        self.events.append(("stage", text))

    def search_started(self, **kwargs: Any) -> None:
        self.events.append(("search_started", kwargs))

    def trial_started(self, number: int, params: dict[str, Any]) -> None:
        self.events.append(("trial_started", (number, params)))

    def epoch_ended(self, number: int, epoch: int, max_epochs: int, logs: dict[str, float]) -> None:
        self.events.append(("epoch_ended", (number, epoch, max_epochs, logs)))

    def trial_ended(self, number: int, state: str, value: Any, best: Any, reason: str) -> None:
        self.events.append(("trial_ended", (number, state, value, best, reason)))

    def of(self, kind: str) -> list[Any]:
        return [payload for name, payload in self.events if name == kind]


@dataclasses.dataclass
class SearchRun:
    """One finished real search and where it wrote."""

    result: Any  # automl.engine.SearchResult
    folder: Path
    storage: str
    tracking_uri: str
    out: Path
    observer: RecordingObserver

    @property
    def study_name(self) -> str:
        return self.result.summary["study"]


@pytest.fixture(autouse=True)
def _run_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in its own folder: whatever lands in the working folder (MLflow puts
    logged models under ./mlruns) stays out of the repository."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session", autouse=True)
def _hermetic_environment(tmp_path_factory: pytest.TempPathFactory):
    """No test reads the caller's local dataset folder (the Makefile exports one), no test
    writes decoded images to ~/.cache/automl (the cache goes to a session folder, for CLI
    subprocesses too), and searches stay in their process whatever their memory does
    (many run in one pytest process; the default AUTOML_RECYCLE_MB is exercised by
    tests/test_cli.py's `cli_search`, recycling itself by tests/test_scale.py)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in CALLER_VARIABLES:
            mp.delenv(name, raising=False)
        mp.setenv("AUTOML_CACHE_DIR", str(tmp_path_factory.mktemp("session_cache")))
        mp.setenv("AUTOML_RECYCLE_MB", "0")
        yield


def _run_search(folder: Path, dataset: str, **options: Any) -> SearchRun:
    import automl

    observer = RecordingObserver()
    storage, tracking = sqlite_url(folder / "automl.db"), mlflow_url(folder / "mlflow.db")
    # MLflow puts artifacts (the logged model) under ./mlruns: keep them in the folder.
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        result = automl.search(
            dataset,
            storage=storage,
            tracking_uri=tracking,
            out=folder / "out",
            observer=observer,
            **options,
        )
    return SearchRun(result, folder, storage, tracking, folder / "out", observer)


@pytest.fixture(scope="session")
def iris_search(tmp_path_factory: pytest.TempPathFactory) -> SearchRun:
    """ONE small real search on iris, shared by many tests (engine, tracking, export, CLI)."""
    return _run_search(tmp_path_factory.mktemp("iris_search"), "iris", trials=4, max_epochs=4)


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CIFAR-10 copy, DIR/cifar10/{train,test}/<class>/*.jpg, unpacked from the share.

    Returns DIR (what `--data-dir` takes).
    """
    if not CIFAR_ARCHIVE.is_file():
        missing(f"the CIFAR-10 archive {CIFAR_ARCHIVE}", "../shared/data beside the checkout")
    root = tmp_path_factory.mktemp("cifar_slice")
    quota = {"train": CIFAR_TRAIN_PER_CLASS, "test": CIFAR_TEST_PER_CLASS}
    taken: dict[tuple[str, str], int] = {}
    with tarfile.open(CIFAR_ARCHIVE) as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) != 3 or parts[0] not in quota:
                continue
            key = (parts[0], parts[1])
            if taken.get(key, 0) >= quota[parts[0]]:
                continue
            taken[key] = taken.get(key, 0) + 1
            target = root / "cifar10" / member.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
            if len(taken) == 20 and all(taken[k] >= quota[k[0]] for k in taken):
                break
    return root


@pytest.fixture(scope="session")
def cifar_cache(tmp_path_factory: pytest.TempPathFactory):
    """AUTOML_CACHE_DIR pointing at a session folder, so decoded arrays never land in ~/.cache."""
    folder = tmp_path_factory.mktemp("automl_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTOML_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(scope="session")
def cifar_search(tmp_path_factory: pytest.TempPathFactory, cifar_root: Path, cifar_cache: Path):
    """A two-trial, one-epoch real search on the CIFAR-10 slice: the cnn starting points."""
    return _run_search(
        tmp_path_factory.mktemp("cifar_search"),
        "cifar10",
        data_dir=cifar_root,
        trials=2,
        max_epochs=1,
    )


def pytest_configure(config: pytest.Config) -> None:
    # The engine opts into Optuna's experimental heartbeat and grouped TPE on purpose.
    config.addinivalue_line("filterwarnings", "ignore::optuna.exceptions.ExperimentalWarning")


# `.ci/run` gives the checks an end (a Unix time): CI's machine stops the whole run at
# 90 minutes, and its speed drifts 2-3x from one day to the next. Past that end a slow
# check is skipped, saying so, instead of the run being killed with nothing reported.
# Unset (a plain `make test`), every check runs. The default suite always runs whole.
CHECKS_END_BY = "AUTOML_CHECKS_END_BY"


def pytest_runtest_setup(item: pytest.Item) -> None:
    end_by = os.environ.get(CHECKS_END_BY)
    if end_by and item.get_closest_marker("slow") and time.time() > float(end_by):
        pytest.skip(f"not started: past CI's time limit for the checks ({CHECKS_END_BY})")
