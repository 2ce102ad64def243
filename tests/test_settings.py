"""automl.settings: every AUTOML_* variable, its default, a good value and a bad one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from automl import settings
from automl._errors import UsageError


@pytest.fixture(autouse=True)
def _unset(monkeypatch):
    """Each test starts from a clean environment (conftest sets AUTOML_RECYCLE_MB=0)."""
    for name in settings.VARIABLES:
        monkeypatch.delenv(name, raising=False)


# accessor, variable, good value, what it reads as, bad value
GOOD_AND_BAD = [
    (settings.heartbeat_seconds, "AUTOML_HEARTBEAT", "5", 5, "0.5"),
    (settings.recycle_mb, "AUTOML_RECYCLE_MB", "250", 250.0, "-1"),
    (settings.report_every, "AUTOML_REPORT_EVERY", "0", 0.0, "soon"),
    (settings.mlflow_patience, "AUTOML_MLFLOW_PATIENCE", "300", 300.0, "nan"),
    (settings.memory_budget, "AUTOML_MEMORY_BUDGET", "1.5G", int(1.5 * 2**30), "lots"),
    (settings.storage_url, "AUTOML_STORAGE", "journal:///s.log", "journal:///s.log", "a.db"),
]


@pytest.mark.parametrize(("accessor", "name", "good", "value", "bad"), GOOD_AND_BAD)
def test_a_good_value_is_read_and_a_bad_one_is_one_clear_error(
    monkeypatch, accessor, name, good, value, bad
):
    monkeypatch.setenv(name, good)
    assert accessor() == value
    monkeypatch.setenv(name, bad)
    rule = settings.VARIABLES[name].rule
    pattern = f"^{name} must be {re.escape(rule)}, but got '{re.escape(bad)}'; unset it or set"
    with pytest.raises(UsageError, match=pattern) as caught:
        accessor()
    assert "\n" not in str(caught.value)


def test_the_message_states_rule_value_and_fix(monkeypatch):
    monkeypatch.setenv("AUTOML_HEARTBEAT", "abc")
    with pytest.raises(UsageError) as caught:
        settings.heartbeat_seconds()
    assert str(caught.value) == (
        "AUTOML_HEARTBEAT must be a whole number of seconds (at least 1), but got 'abc'; "
        "unset it or set e.g. AUTOML_HEARTBEAT=30."
    )


def test_defaults_when_unset_or_empty(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AUTOML_HEARTBEAT", "")  # empty means unset
    monkeypatch.setenv("AUTOML_RECYCLE_MB", "  ")
    assert settings.heartbeat_seconds() == 30
    assert settings.recycle_mb() == 100.0
    assert settings.report_every() == 600.0
    assert settings.mlflow_patience() == 120.0
    assert settings.memory_budget() is None
    assert settings.data_dir() is None
    assert settings.cache_dir() == tmp_path / ".cache" / "automl"
    assert settings.storage_url() == settings.DEFAULT_STORAGE == "sqlite:///automl.db"
    assert settings.tracking_uri() == settings.DEFAULT_TRACKING_URI == "sqlite:///mlflow.db"


def test_sizes_in_the_memory_budget():
    assert settings.parse_size("800M") == 800 * 2**20
    assert settings.parse_size("2gb") == 2 * 2**30
    assert settings.parse_size("512 KiB") == 512 * 2**10
    assert settings.parse_size("1000") == 1000
    with pytest.raises(ValueError):
        settings.parse_size("2 parsecs")


def test_data_dir_must_be_an_existing_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOML_DATA_DIR", str(tmp_path))
    assert settings.data_dir() == tmp_path
    monkeypatch.setenv("AUTOML_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(UsageError, match=r"^AUTOML_DATA_DIR must be an existing folder, but got"):
        settings.data_dir()


def test_cache_dir_may_be_missing_but_not_a_file(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOML_CACHE_DIR", str(tmp_path / "new"))
    assert settings.cache_dir() == tmp_path / "new"
    assert not (tmp_path / "new").exists()  # created by whoever writes there, not here
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("AUTOML_CACHE_DIR", str(tmp_path / "file"))
    with pytest.raises(UsageError, match=r"^AUTOML_CACHE_DIR must be a folder .*, but got"):
        settings.cache_dir()


def test_storage_precedence(monkeypatch):
    assert settings.storage_url() == settings.DEFAULT_STORAGE
    monkeypatch.setenv("AUTOML_STORAGE", "sqlite:///env.db")
    assert settings.storage_url() == "sqlite:///env.db"
    assert settings.storage_url("sqlite:///flag.db") == "sqlite:///flag.db"
    assert settings.storage_url("") == "sqlite:///env.db"  # an empty flag is no flag


def test_tracking_precedence_and_none(monkeypatch):
    assert settings.tracking_uri() == settings.DEFAULT_TRACKING_URI
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert settings.tracking_uri() == "http://mlflow:5000"
    monkeypatch.setenv("AUTOML_TRACKING_URI", "sqlite:///automl-env.db")
    assert settings.tracking_uri() == "sqlite:///automl-env.db"
    assert settings.tracking_uri("./mlruns") == "./mlruns"
    # "none" (any case) turns MLflow off wherever it comes from, and the first one wins.
    assert settings.tracking_uri("None") is None
    monkeypatch.setenv("AUTOML_TRACKING_URI", "NONE")
    assert settings.tracking_uri() is None
    assert settings.tracking_uri("sqlite:///flag.db") == "sqlite:///flag.db"
    monkeypatch.delenv("AUTOML_TRACKING_URI")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "none")
    assert settings.tracking_uri() is None


def test_every_default_parses_and_describe_lists_the_table():
    for variable in settings.VARIABLES.values():
        if variable.default is not None:
            variable.parse(variable.default)
        assert variable.doc and "\n" not in variable.doc
    rows = settings.describe()
    assert [name for name, _, _ in rows] == list(settings.VARIABLES)
    defaults = {name: default for name, default, _ in rows}
    assert defaults["AUTOML_HEARTBEAT"] == "30"
    assert defaults["AUTOML_TRACKING_URI"] == "$MLFLOW_TRACKING_URI, else sqlite:///mlflow.db"
    assert all(default for _, default, _ in rows)


def test_settings_import_nothing_heavy():
    """The lowest layer: `--help` and workers read it without TensorFlow, Optuna, MLflow."""
    code = (
        "import sys, automl.settings; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'optuna', 'mlflow') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    )
    assert done.stdout.strip() == "[]"
