"""automl.tracking._report: the study artifacts, drawn from a real Optuna study.

The study is a real one with a cheap objective that reports learning curves, so some
trials are pruned: the plots, the leaderboard and the space description are checked as
files a user opens.
"""

from __future__ import annotations

import csv
import json

import optuna
import pytest

from automl.tracking import NullTracker, StudyReport
from automl.tracking._report import PLOTS, write_plots


@pytest.fixture(scope="module")
def study() -> optuna.Study:
    """Twelve trials with learning curves over 5 epochs; the median pruner cuts some."""
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=1),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    )
    study.set_user_attr("metric", "val_accuracy")

    def objective(trial: optuna.Trial) -> float:
        rate = trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
        units = trial.suggest_int("units", 8, 64)
        trial.set_user_attr("epochs", 0)
        value = 0.0
        for epoch in range(1, 6):
            value = min(1.0, epoch * rate * units / 10)
            trial.report(value, epoch)
            trial.set_user_attr("epochs", epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study.optimize(objective, n_trials=12)
    assert {t.state.name for t in study.trials} == {"COMPLETE", "PRUNED"}
    return study


def test_every_plot_is_written_as_html_and_png(study, tmp_path):
    assert write_plots(study, tmp_path) == list(PLOTS)
    for stem in PLOTS:
        html = (tmp_path / f"{stem}.html").read_text()
        assert "plotly" in html and len(html) > 100_000  # plotly.js inside: opens offline
        assert (tmp_path / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pruned_learning_curves_are_marked_as_cut_off(study, tmp_path):
    write_plots(study, tmp_path)
    html = (tmp_path / "intermediate_values.html").read_text()
    pruned = [t.number for t in study.trials if t.state.name == "PRUNED"]
    complete = [t.number for t in study.trials if t.state.name == "COMPLETE"]
    for number in pruned:
        assert f'"name":"Trial{number} (pruned)"' in html
    for number in complete:
        assert f'"name":"Trial{number}"' in html
    assert '"dash":"dot"' in html


def test_report_writes_leaderboard_space_and_summary(study, tmp_path):
    report = StudyReport(NullTracker(), tmp_path / "report", every=0)
    folder = report.write(study, {"study": "unit", "best": 1}, {"space": "mlp"})
    rows = list(csv.DictReader((folder / "leaderboard.csv").open()))
    assert len(rows) == len(study.trials)
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    assert rows[: len(complete)] == complete  # complete trials first, best first
    values = [float(r["value"]) for r in complete]
    assert values == sorted(values, reverse=True)
    assert {"params_learning_rate", "params_units", "user_attrs_epochs", "duration"} <= set(rows[0])
    space = json.loads((folder / "search_space.json").read_text())
    assert space["space"] == "mlp"
    assert space["params"]["units"]["attributes"] == {"low": 8, "high": 64, "step": 1, "log": False}
    assert json.loads((folder / "summary.json").read_text()) == {"study": "unit", "best": 1}


def test_report_is_due_after_its_interval(monkeypatch):
    assert StudyReport(NullTracker(), None, every=0).due()
    assert not StudyReport(NullTracker(), None, every=3600).due()
    monkeypatch.setenv("AUTOML_REPORT_EVERY", "42")
    assert StudyReport(NullTracker(), None).every == 42.0


def test_plots_wait_for_trials_they_can_draw(tmp_path):
    """No finished trial: no plot at all; one complete trial: no importances yet."""
    study = optuna.create_study()
    assert write_plots(study, tmp_path) == [] and not list(tmp_path.iterdir())
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    written = write_plots(study, tmp_path)
    assert "optimization_history" in written and "param_importances" not in written
