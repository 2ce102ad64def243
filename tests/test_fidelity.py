"""--subset: trials on a stratified fraction of the training split, the best promoted to
all of it and never pruned."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

import automl
from automl import UsageError
from automl.engine._fidelity import PROMOTE_AFTER, is_promoted, promote_best, subset_indices
from tests.conftest import sqlite_url


def test_subset_is_fixed_and_stratified():
    y = np.repeat(np.arange(4), [100, 50, 30, 20])
    rows = subset_indices(y, 0.25, seed=0, stratify=True)
    assert len(rows) == 50 and np.all(np.diff(rows) > 0)
    assert np.bincount(y[rows]).tolist() == [25, 12, 8, 5]  # class shares kept
    assert np.array_equal(rows, subset_indices(y, 0.25, seed=0, stratify=True))


def _study_with(values: list[float]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for value in values:
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        study.tell(trial, value)
    return study


def test_the_best_subset_trial_is_promoted_once_after_enough_trials():
    assert promote_best(_study_with([0.5] * (PROMOTE_AFTER - 1))) is None
    study = _study_with([0.5, 0.9, 0.7])
    assert promote_best(study) == 1
    assert promote_best(study) is None  # one waiting promotion at a time
    promoted = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    assert is_promoted(promoted) and promoted.params["x"] == study.trials[1].params["x"]
    study.tell(promoted, 0.95)
    assert promote_best(study) is None  # trial 1 is promoted already
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study.tell(trial, 0.93)  # a new best subset trial
    assert promote_best(study) == trial.number


@pytest.mark.slow
def test_search_with_subset_promotes_the_best_to_full_data(tmp_path):
    result = automl.search(
        "digits",
        space="mlp",
        trials=6,
        max_epochs=6,
        subset=0.3,
        storage=sqlite_url(tmp_path / "automl.db"),
        tracking_uri=None,
        out=tmp_path / "out",
    )
    trials = result.study.trials
    promoted = [t for t in trials if is_promoted(t)]
    assert promoted, [t.user_attrs for t in trials]
    for trial in trials:
        assert trial.user_attrs["fidelity"] == (1.0 if is_promoted(trial) else 0.3)
    first = promoted[0]
    source = trials[first.user_attrs["promoted_from"]]
    assert first.params == source.params and first.state.name == "COMPLETE"
    assert not first.intermediate_values  # silent: its full-data curve is not the pruner's
    with pytest.raises(UsageError, match="^subset must be a fraction between 0 and 1"):
        automl.search("digits", subset=1.5, trials=1, tracking_uri=None)
