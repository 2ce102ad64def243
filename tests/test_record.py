"""automl.record: the one owner of what a study and its trials store."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pytest

from automl import SearchConfig, UsageError
from automl._leaderboard import leaderboard_rows
from automl.engine._workers import worker_config
from automl.export import summarize
from automl.objective import Objective
from automl.record import RECORDED, StudyRecord, TrialRecord
from tests.conftest import run_cli, sqlite_url

PREVIOUS = Path(__file__).parent / "fixtures" / "study_v0_3_0.db"


def _study(tmp_path: Path, direction: str = "maximize") -> optuna.Study:
    return optuna.create_study(
        study_name="s", storage=sqlite_url(tmp_path / "s.db"), direction=direction
    )


def test_a_record_round_trips_through_the_storage(tmp_path):
    """What a new study records reads back equal, from a fresh load of the storage."""
    config = SearchConfig("iris", trials=7, subset=0.5, class_weight="balanced").resolved()
    objective = Objective.for_task("regression", "mae")
    record = StudyRecord.new(config, "regression", objective, in_memory=False)
    record.write(_study(tmp_path, "minimize"))

    loaded = optuna.load_study(study_name="s", storage=sqlite_url(tmp_path / "s.db"))
    again = StudyRecord.read(loaded)
    assert again == record
    assert again.objective(loaded) == objective  # the direction comes from Optuna
    assert {k: getattr(again.config, k) for k in RECORDED} == {
        **{k: getattr(config, k) for k in RECORDED},
        "data_dir": None,
    }
    assert again.config.storage is None and again.config.tracking_uri  # no URLs recorded


def test_a_study_written_by_automl_0_3_still_reads(tmp_path):
    """A study made by the previous release (tests/fixtures) reads through the record:
    the summary, the leaderboard, a worker's configuration and `automl show`."""
    path = tmp_path / "previous.db"
    shutil.copyfile(PREVIOUS, path)
    storage = sqlite_url(path)
    study = optuna.load_study(study_name="digits-previous", storage=storage)

    record = StudyRecord.of(study)
    assert (record.dataset, record.space, record.task) == ("digits", "auto", "classification")
    assert (record.config.trials, record.config.max_epochs, record.config.seed) == (3, 2, 0)
    assert record.monitor == "val_accuracy" and not record.in_memory
    assert record.objective(study).direction == "maximize"
    summary = summarize(study)
    assert summary["best"]["metric"] == "val_accuracy" and summary["best"]["epochs"] == 2
    assert summary["trials"] == {"complete": 1, "pruned": 2, "failed": 0, "running": 0}
    rows = leaderboard_rows(study)
    assert rows[0]["state"] == "COMPLETE" and rows[1]["reason"] == "pruned after epoch 1."
    config = worker_config(study, storage, tracking_uri="none", out=tmp_path / "out")
    assert (config.dataset, config.trials, config.study, config.tracking_uri) == (
        "digits",
        3,
        "digits-previous",
        None,
    )
    shown = run_cli("show", "digits-previous", "--storage", storage, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "val_accuracy" in shown.stdout and "PRUNED" in shown.stdout and "0.9514" in shown.stdout


def test_a_study_without_a_record_is_refused_in_one_line(tmp_path):
    study = _study(tmp_path)
    assert StudyRecord.read(study) is None
    with pytest.raises(UsageError, match=r"records no configuration .*under another study name"):
        StudyRecord.of(study)


def test_workers_cannot_rebuild_in_memory_searches(tmp_path):
    config = SearchConfig("arrays").resolved(in_memory_data=True)
    record = StudyRecord.new(config, "classification", Objective(), in_memory=True)
    with pytest.raises(UsageError, match="in-memory data or a space object"):
        record.rebuild_config(study="s")


def test_a_resumed_study_refuses_another_dataset_space_or_metric():
    """Names the option in the caller's language: the parameter from Python."""
    config = SearchConfig("iris", metric="auc").resolved()
    record = StudyRecord.new(config, "classification", Objective("val_auc"), in_memory=False)
    record.check_same_search(config, "s")  # the same search resumes
    with pytest.raises(UsageError, match=r"created for dataset 'iris', not 'wine'; pass another"):
        record.check_same_search(config.replace(dataset="wine"), "s")
    with pytest.raises(UsageError, match=r"scores trials on val_auc, not val_f1") as caught:
        record.check_same_search(config.replace(metric="f1"), "s")
    assert "another study to start" in str(caught.value)
    assert "another --study to start" in caught.value.for_cli()


def test_trial_facts_have_one_set_of_names(tmp_path):
    """A trial's facts are written and read under `TrialRecord`'s field names only."""
    study = _study(tmp_path)
    trial = study.ask()
    TrialRecord.write(trial, seed=5, epochs=3, reason="pruned after epoch 3.")
    with pytest.raises(TypeError, match="no field 'epoch'"):
        TrialRecord.write(trial, epoch=3)
    study.tell(trial, 0.5)
    facts = TrialRecord.read(study.trials[0])
    assert (facts.seed, facts.epochs, facts.reason, facts.model_file) == (
        5,
        3,
        "pruned after epoch 3.",
        None,
    )
