"""Every subcommand takes the storage and the MLflow store from the same place: the flag,
else AUTOML_STORAGE / AUTOML_TRACKING_URI, else MLflow's own MLFLOW_TRACKING_URI."""

from __future__ import annotations

import mlflow
import pytest

from tests.conftest import cli_env, run_cli, sqlite_url


@pytest.mark.parametrize(
    "tracking_variable",
    ["AUTOML_TRACKING_URI", pytest.param("MLFLOW_TRACKING_URI", marks=pytest.mark.slow)],
)
def test_search_show_and_export_find_the_study_through_the_environment(tmp_path, tracking_variable):
    """No --storage or --tracking-uri anywhere: search writes where the variables say,
    show and export read the study from there, and MLflow gets the study's runs."""
    storage, tracking = sqlite_url(tmp_path / "env.db"), sqlite_url(tmp_path / "env-mlflow.db")
    env = cli_env(AUTOML_STORAGE=storage, **{tracking_variable: tracking})
    searched = run_cli(
        "search", "iris", "--trials", "1", "--max-epochs", "1", cwd=tmp_path, env=env
    )
    assert searched.returncode == 0, searched.stderr
    assert not (tmp_path / "automl.db").exists() and not (tmp_path / "mlflow.db").exists()

    shown = run_cli("show", "iris-auto", cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "study iris-auto" in shown.stdout
    exported = run_cli("export", "iris-auto", "--out", tmp_path / "m.keras", cwd=tmp_path, env=env)
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "m.keras").is_file()
    client = mlflow.MlflowClient(tracking)
    assert client.get_experiment_by_name("iris-auto") is not None


@pytest.mark.slow  # 20-50 s on a loaded day: beyond the default suite's 15 minutes
def test_a_flag_beats_the_environment_and_none_turns_mlflow_off(tmp_path):
    """--storage wins over AUTOML_STORAGE; AUTOML_TRACKING_URI=none logs nothing."""
    flagged = sqlite_url(tmp_path / "flag.db")
    env = cli_env(AUTOML_STORAGE=sqlite_url(tmp_path / "env.db"), AUTOML_TRACKING_URI="none")
    searched = run_cli(
        "search", "iris", "--trials", "1", "--max-epochs", "1", "--storage", flagged,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert searched.returncode == 0, searched.stderr
    assert (tmp_path / "flag.db").is_file() and not (tmp_path / "env.db").exists()
    assert not (tmp_path / "mlflow.db").exists()
    missing = run_cli("show", "iris-auto", cwd=tmp_path, env=env)  # AUTOML_STORAGE: env.db
    assert missing.returncode == 2 and "env.db does not exist" in missing.stderr
    ui = run_cli("ui", cwd=tmp_path, env=env)
    assert ui.returncode == 2
    assert ui.stderr.strip() == (
        "automl: error: --tracking-uri is none: there is no MLflow store to show."
    )


def test_a_bad_variable_is_one_line_naming_it(tmp_path):
    """Any subcommand that reads a variable refuses a bad value with exit 2, before work."""
    env = cli_env(AUTOML_HEARTBEAT="soon")
    result = run_cli("search", "iris", "--trials", "1", cwd=tmp_path, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("automl: error: AUTOML_HEARTBEAT must be a whole number")
    assert not (tmp_path / "automl.db").exists() or "iris-auto" not in result.stdout
