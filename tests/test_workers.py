"""`automl worker` and `--jobs`: what a worker refuses, in one line with exit 2, before
it trains anything. (Several real workers on one study: tests/test_scale.py, slow.)"""

from __future__ import annotations

import optuna
import pytest

import automl
from automl._errors import UsageError
from automl.engine._workers import open_study, worker_config
from tests.conftest import run_cli, sqlite_url


def test_worker_needs_an_existing_study(iris_search, tmp_path):
    result = run_cli("worker", "--study", "nope", "--storage", iris_search.storage, cwd=tmp_path)
    assert result.returncode == 2
    assert "no study 'nope'" in result.stderr and "iris-auto" in result.stderr


def test_worker_rebuilds_the_recorded_configuration(iris_search):
    """The study recorded its search: a worker needs only the storage and the name."""
    config = worker_config(*open_study("iris-auto", iris_search.storage), tracking_uri="none")
    assert (config.dataset, config.space, config.trials, config.max_epochs) == (
        "iris",
        "auto",
        4,
        4,
    )
    assert config.tracking_uri is None
    assert "sqlite" not in str(iris_search.result.study.user_attrs)  # no URLs kept


def test_worker_refuses_a_study_without_recorded_configuration(tmp_path):
    storage = sqlite_url(tmp_path / "bare.db")
    optuna.create_study(study_name="bare", storage=storage)
    with pytest.raises(UsageError, match="records no configuration"):
        worker_config(*open_study("bare", storage))


def test_worker_refuses_in_memory_data(tmp_path):
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    storage = sqlite_url(tmp_path / "mem.db")
    automl.search(
        (x.astype("float32"), y), trials=1, max_epochs=1, storage=storage, tracking_uri=None,
        out=tmp_path / "out", study="mem",
    )  # fmt: skip
    with pytest.raises(UsageError, match="in-memory data"):
        worker_config(*open_study("mem", storage))


def test_jobs_must_be_a_positive_whole_number(tmp_path):
    result = run_cli("search", "iris", "--jobs", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert "--jobs must be a whole number of at least 1" in result.stderr


def test_jobs_refuse_in_memory_data_before_training(tmp_path):
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    with pytest.raises(UsageError, match="jobs > 1 needs a dataset name or path"):
        automl.search((x, y), jobs=2, trials=2, storage=sqlite_url(tmp_path / "a.db"))


def test_heartbeat_setting_must_be_whole_seconds(monkeypatch):
    from automl.engine._study import heartbeat_seconds

    monkeypatch.setenv("AUTOML_HEARTBEAT", "0.5")
    with pytest.raises(UsageError, match="AUTOML_HEARTBEAT must be a whole number of seconds"):
        heartbeat_seconds()


def test_journal_storage_in_a_missing_folder_is_refused(tmp_path):
    result = run_cli(
        "search", "iris", "--storage", f"journal:///{tmp_path}/nope/study.log", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "does not exist or is not writable" in result.stderr and "--storage" in result.stderr


def test_refit_needs_a_complete_trial(tmp_path):
    from automl.config import SearchConfig
    from automl.engine._refit import refit_best
    from automl.objective import Objective
    from automl.record import StudyRecord

    storage = sqlite_url(tmp_path / "empty.db")
    study = optuna.create_study(study_name="empty", storage=storage)
    config = SearchConfig("iris").resolved()
    StudyRecord.new(config, "classification", Objective(), in_memory=False).write(study)
    with pytest.raises(UsageError, match="has no complete trial to refit yet"):
        refit_best("empty", storage)
