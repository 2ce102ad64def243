"""automl.engine: the study, the trial loop, resume, seeds, pruning, failures and budgets."""

from __future__ import annotations

import importlib.util
import textwrap
import time

import mlflow
import numpy as np
import optuna
import pytest

import automl
from automl import UsageError
from automl.config import PRUNERS, SAMPLERS
from automl.data import load_dataset
from automl.engine._study import count_finished, load_study, make_pruner, make_sampler
from automl.export import best_trial_or_none
from automl.record import StudyRecord, TrialRecord, mlflow_run_id, tie_loss
from automl.spaces import HyperParameters
from tests.conftest import RecordingObserver, mlflow_url, sqlite_url

FINISHED = {"COMPLETE", "PRUNED", "FAIL"}


def _search(tmp_path, dataset="iris", *, tracking=None, storage=None, observer=None, **options):
    """A real search whose files all land in tmp_path."""
    return automl.search(
        dataset,
        storage=storage or sqlite_url(tmp_path / "automl.db"),
        tracking_uri=tracking or mlflow_url(tmp_path / "mlflow.db"),
        out=tmp_path / "out" / options.get("study", "default"),
        observer=observer,
        **options,
    )


def _runs(tracking_uri: str, experiment: str) -> list:
    client = mlflow.MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


# -- the shared iris search -------------------------------------------------------------


def test_search_runs_the_whole_budget(iris_search):
    """`trials=4` leaves exactly 4 finished trials, at least one complete, none running."""
    study = iris_search.result.study
    assert len(study.trials) == 4
    assert {t.state.name for t in study.trials} <= FINISHED
    assert count_finished(study) == 4
    summary = iris_search.result.summary
    assert (
        summary["trials"]["complete"] + summary["trials"]["pruned"] + summary["trials"]["failed"]
        == 4
    )
    assert summary["trials"]["complete"] >= 1
    assert summary["best"]["trial"] == study.best_trial.number
    assert iris_search.result.best_params == study.best_trial.params


def test_study_records_what_it_is(iris_search):
    """The study's record says dataset, space, metric and budget, so show/export need no
    flags; each trial records its seed, epochs and seconds."""
    study = iris_search.result.study
    record = StudyRecord.of(study)
    assert record.dataset == "iris" and record.space == "auto"
    assert record.monitor == "val_accuracy" and record.objective(study).direction == "maximize"
    assert record.config.max_epochs == 4 and record.config.seed == 0
    assert mlflow_run_id(study)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    for trial in study.trials:
        assert trial.user_attrs["seed"] == trial.number  # seed 0 * 100003 + number
        assert 1 <= trial.user_attrs["epochs"] <= 4
        assert trial.user_attrs["seconds"] > 0


def test_best_checkpoint_is_the_best_epoch_of_the_best_trial(iris_search):
    """The saved model reproduces the best trial's value on the validation split
    (early stopping restored the best epoch's weights); the models of the best 5
    complete trials (the final ensemble's candidates) are kept on disk, no others."""
    import keras

    best = best_trial_or_none(iris_search.result.study)  # ties: the lowest val_loss
    model = keras.models.load_model(best.user_attrs["model_path"], safe_mode=True)
    data = load_dataset("iris", seed=0)
    predicted = model.predict(data.x_val, verbose=0).argmax(axis=-1)
    assert np.mean(predicted == data.y_val) == pytest.approx(best.value, abs=1e-6)
    assert best.value == max(best.intermediate_values.values())
    kept = sorted(p.name for p in (iris_search.out / "checkpoints").iterdir())
    complete = [t for t in iris_search.result.study.trials if t.state.name == "COMPLETE"]
    top = sorted(complete, key=lambda t: (-t.value, tie_loss(t), t.number))[:5]
    assert f"trial-{best.number}.keras" in kept
    assert kept == sorted(f"trial-{t.number}.keras" for t in top)


def test_observer_hears_every_step(iris_search):
    """The observer gets: loading data, search started, per trial its start, each epoch
    (1-based, of max_epochs) and its end with the study's state; then export and report."""
    obs: RecordingObserver = iris_search.observer
    study = iris_search.result.study
    assert obs.events[0] == ("stage", "loading data")
    (started,) = obs.of("search_started")
    assert started["study"] == "iris-auto" and started["trials"] == 4 and started["done"] == 0
    ended = {number: (state, reason) for number, state, _, _, reason in obs.of("trial_ended")}
    assert ended == {t.number: (t.state.name, t.user_attrs.get("reason", "")) for t in study.trials}
    for trial in study.trials:
        epochs = [e for n, e, _, _ in obs.of("epoch_ended") if n == trial.number]
        assert epochs == list(range(1, trial.user_attrs["epochs"] + 1))
    assert all(m == 4 and "val_accuracy" in logs for _, _, m, logs in obs.of("epoch_ended"))
    bests = [best for *_, best, _ in obs.of("trial_ended") if best is not None]
    assert bests == sorted(bests)  # best-so-far never gets worse
    assert obs.events[-3:] == [
        ("stage", "choosing the final model on validation: the best, an ensemble, TTA"),
        ("stage", "scoring the final model on the test set"),
        ("stage", "writing the study report to MLflow"),
    ]


def test_load_study_of_an_unknown_name_lists_the_studies(iris_search):
    """show/export's loader names the storage (masked) and the studies it holds."""
    with pytest.raises(
        UsageError, match=r"no study 'nope' in sqlite:///.*; studies there: iris-auto"
    ):
        load_study("nope", iris_search.storage)


# -- resume, seeds --------------------------------------------------------------------------


@pytest.mark.slow  # keeps the default suite under 15 minutes on 2 cores
def test_resume_counts_finished_trials_toward_the_budget(tmp_path):
    """trials=2 then trials=4 on the same study and storage gives exactly 4 trials (2 new);
    trials=4 again runs none. The MLflow parent run is reopened, not duplicated."""
    options = {"study": "resume", "max_epochs": 2, "pruner": "none"}
    _search(tmp_path, trials=2, **options)
    observer = RecordingObserver()
    second = _search(tmp_path, trials=4, observer=observer, **options)
    assert observer.of("search_started")[0]["done"] == 2
    assert [t.number for t in second.study.trials] == [0, 1, 2, 3]
    assert {t.state.name for t in second.study.trials} <= FINISHED
    assert [n for n, *_ in observer.of("trial_ended")] == [2, 3]

    third = _search(tmp_path, trials=4, **options)
    assert len(third.study.trials) == 4
    assert third.summary["trials"]["complete"] + third.summary["trials"]["pruned"] == 4

    runs = _runs(mlflow_url(tmp_path / "mlflow.db"), "resume")
    parents = [r for r in runs if r.data.tags.get("automl.role") == "study"]
    assert len(parents) == 1
    assert parents[0].info.run_id == second.study.user_attrs["mlflow_run_id"]
    assert sorted(r.info.run_name for r in runs if r not in parents) == [
        f"trial-{n}" for n in range(4)
    ]
    assert all(r.info.status != "RUNNING" for r in runs)


@pytest.mark.slow  # 15-25 s: beyond the default suite's 15 minutes
def test_resume_refuses_a_different_dataset(tmp_path):
    """Resuming a study under another dataset is a usage error, before any training."""
    options = {"study": "mixed", "max_epochs": 1, "pruner": "none"}
    _search(tmp_path, trials=1, **options)
    try:
        _search(tmp_path, dataset="wine", trials=2, **options)
    except UsageError as exc:
        assert "iris" in str(exc)
    except Exception as exc:  # anything else is the bug this test shows
        raise AssertionError(f"not a usage error: {type(exc).__name__}: {exc}") from None
    else:
        raise AssertionError("the study silently mixed iris and wine trials")


@pytest.mark.slow  # keeps the default suite under 15 minutes on 2 cores
def test_same_seed_samples_the_same_params(tmp_path):
    """Two fresh studies (separate storage files) with the same seed sample identical params
    for their first trials; another seed samples different ones."""
    tracking = mlflow_url(tmp_path / "mlflow.db")
    options = {"max_epochs": 1, "pruner": "none", "seed": 7, "tracking": tracking}
    a = _search(tmp_path, storage=sqlite_url(tmp_path / "a.db"), study="a", trials=3, **options)
    b = _search(tmp_path, storage=sqlite_url(tmp_path / "b.db"), study="b", trials=3, **options)
    assert [t.params for t in a.study.trials] == [t.params for t in b.study.trials]
    assert len({str(t.params) for t in a.study.trials}) == 3  # and they are not all alike
    options["seed"] = 8
    c = _search(tmp_path, storage=sqlite_url(tmp_path / "c.db"), study="c", trials=2, **options)
    # Trial 0 is the space's starting point (tabular's, under auto) whatever the seed;
    # trial 1 is the first sampled one.
    assert TrialRecord.read(c.study.trials[0]).starting_point
    assert c.study.trials[1].params != a.study.trials[1].params


# -- pruning, failures, budgets -----------------------------------------------------------------


@pytest.mark.slow  # keeps the default suite under 15 minutes on 2 cores
def test_hyperband_prunes_weak_trials_on_digits(tmp_path):
    """With several trials on digits the default pruner stops at least one trial early; the
    pruned trial's MLflow run is FINISHED with state=PRUNED and the epoch it stopped at."""
    result = _search(tmp_path, "digits", study="prune", trials=6, max_epochs=4, seed=0)
    pruned = [t for t in result.study.trials if t.state.name == "PRUNED"]
    assert pruned, [t.state.name for t in result.study.trials]
    assert result.summary["trials"]["pruned"] == len(pruned)

    tracking = mlflow_url(tmp_path / "mlflow.db")
    client = mlflow.MlflowClient(tracking)
    by_name = {r.info.run_name: r for r in _runs(tracking, "prune")}
    for trial in pruned:
        run = by_name[f"trial-{trial.number}"]
        assert run.info.status == "FINISHED"
        assert run.data.tags["state"] == "PRUNED"
        epochs = int(run.data.tags["pruned_at_epoch"])
        assert epochs == trial.user_attrs["epochs"] == len(trial.intermediate_values)
        assert len(client.get_metric_history(run.info.run_id, "val_accuracy")) == epochs
        assert "pruned" in run.data.tags["reason"].lower()


FAILING_SPACE = textwrap.dedent('''
    """A space that works, then fails in every way a user's space can, in turn."""
    import keras

    from automl.spaces.blocks import output_head
    from automl.spaces.training import compile_for_task

    MODES = ["ok", "raise", "not_a_model", "wrong_outputs", "not_compiled", "nan_loss"]


    def build(hp, spec):
        lr = hp.Float("learning_rate", 1e-3, 1e-2, sampling="log")
        mode = hp.Fixed("mode", MODES[hp.trial.number % len(MODES)])
        inputs, x = spec.inputs()
        x = keras.layers.Dense(8, activation="relu")(x)
        if mode == "raise":
            raise ValueError("exploded on purpose\\nwith a second line")
        if mode == "not_a_model":
            return "a string"
        if mode == "wrong_outputs":
            out = keras.layers.Dense(spec.num_classes + 2, activation="softmax")(x)
            return compile_for_task(keras.Model(inputs, out), keras.optimizers.Adam(lr), spec)
        model = keras.Model(inputs, output_head(x, spec))
        if mode == "not_compiled":
            return model
        if mode == "nan_loss":
            model.compile(
                optimizer=keras.optimizers.Adam(lr),
                loss=lambda y_true, y_pred: keras.ops.mean(y_pred) * float("nan"),
                metrics=["accuracy"],
            )
            return model
        return compile_for_task(model, keras.optimizers.Adam(lr), spec)


    def always_raises(hp):
        hp.Int("units", 8, 64)
        raise ValueError("this space is broken")
''')


@pytest.fixture
def failing_space(tmp_path):
    """The space file above, written to tmp_path; returns its path."""
    path = tmp_path / "failing_space.py"
    path.write_text(FAILING_SPACE)
    return path


def test_failing_trials_do_not_stop_the_study(tmp_path, failing_space):
    """Trials that raise, return a non-model, the wrong outputs or a NaN loss fail
    with a one-line reason (in Optuna and as an MLflow FAILED run); an uncompiled model is
    compiled by the engine; the study goes on and exports the best trial."""
    result = _search(
        tmp_path,
        study="fail",
        space=f"{failing_space}:build",
        trials=6,
        max_epochs=2,
        pruner="none",
        sampler="random",
    )
    trials = result.study.trials
    states = [t.state.name for t in trials]
    # The NaN trial is PRUNED in Optuna so that TPE ranks its point below every other
    # (samplers skip FAIL trials); it is failed for people: reason, MLflow, summary.
    assert states == ["COMPLETE", "FAIL", "FAIL", "FAIL", "COMPLETE", "PRUNED"]
    assert trials[5].user_attrs["failed_in_training"] is True
    failed = [t for t in trials if t.state.name == "FAIL" or "failed_in_training" in t.user_attrs]
    reasons = [t.user_attrs["reason"] for t in failed]
    assert reasons[0] == "the space raised while building: ValueError: exploded on purpose"
    assert "returned str, not a keras.Model" in reasons[1]
    assert "outputs shape (5,) but the classification task needs 3 class" in reasons[2]
    assert "NaN or infinite" in reasons[3]
    assert all("\n" not in reason and reason for reason in reasons)
    assert result.summary["trials"] == {"complete": 2, "pruned": 0, "failed": 4, "running": 0}
    assert result.best_model is not None

    runs = {r.info.run_name: r for r in _runs(mlflow_url(tmp_path / "mlflow.db"), "fail")}
    for trial in failed:
        run = runs[f"trial-{trial.number}"]
        assert run.info.status == "FAILED"
        assert run.data.tags["state"] == "FAIL"
        assert run.data.tags["reason"] == trial.user_attrs["reason"]
    assert runs["trial-4"].info.status == "FINISHED"
    assert runs["trial-4"].data.params["mode"] == "not_compiled"  # hp.Fixed values are logged


def test_a_space_that_always_fails_stops_after_the_first_trials(tmp_path, failing_space):
    """When the first 3 trials all fail in the space, the search stops with a UsageError
    naming the reason, and the study's MLflow run ends FAILED, not RUNNING."""
    with pytest.raises(UsageError, match=r"first 3 trials all failed .*this space is broken"):
        _search(tmp_path, study="broken", space=f"{failing_space}:always_raises", trials=10)
    study = optuna.load_study(study_name="broken", storage=sqlite_url(tmp_path / "automl.db"))
    assert [t.state.name for t in study.trials] == ["FAIL"] * 3
    runs = _runs(mlflow_url(tmp_path / "mlflow.db"), "broken")
    assert {r.info.status for r in runs} == {"FAILED"}


@pytest.mark.slow  # keeps the default suite under 15 minutes on 2 cores
def test_timeout_holds_inside_a_running_trial(tmp_path):
    """A wall-clock budget stops the search, and the running trial, at the deadline: with
    room for hundreds of epochs, trials are planned to end by `timeout` (the deadline
    callback stops any estimate that was short), and the search ends soon after it."""
    marks: dict[str, float] = {}
    timeout_s = 40  # setup and measuring take 8-20 s (machines and days differ 2x)

    class Clock(RecordingObserver):
        def search_started(self, **kwargs):
            marks["start"] = time.monotonic()
            super().search_started(**kwargs)

        def stage(self, text):
            if text.startswith("scoring"):
                marks["end"] = time.monotonic()
            super().stage(text)

    result = _search(
        tmp_path,
        "digits",
        study="deadline",
        trials=None,
        timeout=f"{timeout_s}s",
        max_epochs=500,
        patience=500,
        pruner="none",
        observer=Clock(),
    )
    # 500 epochs with patience 500 would run for minutes; 20 s past the deadline is
    # room for a loaded 2-core machine finishing its current epoch and closing up.
    assert marks["end"] - marks["start"] < timeout_s + 20
    assert result.study.trials
    assert {t.state.name for t in result.study.trials} <= FINISHED
    assert all(t.user_attrs["epochs"] < 500 for t in result.study.trials)


def test_usage_errors_create_nothing(tmp_path, monkeypatch):
    """Unknown names and unreachable storage raise UsageError before any file is written."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=r"unknown dataset 'nope'"):
        automl.search("nope")
    with pytest.raises(UsageError, match=r"unknown space 'nope'"):
        automl.search("iris", space="nope")
    with pytest.raises(UsageError, match=r"cannot reach storage postgresql://bob:\*\*\*@") as e:
        automl.search("iris", storage="postgresql://bob:secret@127.0.0.1:1/db")
    assert "secret" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_no_run_left_running_when_out_is_unusable(tmp_path):
    """An unusable --out is a usage error, found before any MLflow run is opened."""
    (tmp_path / "a_file").write_text("")
    tracking = sqlite_url(tmp_path / "mlflow.db")
    with pytest.raises(automl.UsageError, match="^out .*is a file; pass a folder"):
        automl.search(
            "iris",
            trials=1,
            max_epochs=1,
            study="badout",
            storage=sqlite_url(tmp_path / "automl.db"),
            tracking_uri=tracking,
            out=tmp_path / "a_file" / "out",
        )
    assert not (tmp_path / "automl.db").exists()
    assert not (tmp_path / "mlflow.db").exists()


# -- samplers and pruners -----------------------------------------------------------------------


def _toy_objective(trial: optuna.Trial) -> float:
    """A real hp-API objective without Keras: mixed, log-scaled and conditional params."""
    hp = HyperParameters(trial)
    layers = hp.Int("layers", 1, 4)
    lr = hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    optimizer = hp.Choice("optimizer", ["adam", "sgd"])
    with hp.conditional_scope("optimizer", "sgd"):
        momentum = hp.Float("momentum", 0.0, 0.99)
    bonus = momentum * 0.01 if optimizer == "sgd" else 0.0
    return -abs(np.log10(lr) + 2.5) - 0.1 * layers + bonus


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            name,
            marks=pytest.mark.skipif(
                importlib.util.find_spec("torch") is None,
                reason="--sampler gp needs torch (the 'gp' extra); it is not installed",
            ),
        )
        if name == "gp"
        else name
        for name in SAMPLERS
    ],
)
def test_every_advertised_sampler_runs_the_hp_api(name):
    """Each sampler, seeded as the engine makes it, drives hp-API trials past its startup."""
    study = optuna.create_study(direction="maximize", sampler=make_sampler(name, 0))
    study.optimize(_toy_objective, n_trials=12)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 12


def test_samplers_and_pruners_by_name():
    """Names map to the Optuna classes; unknown names are usage errors."""
    assert isinstance(make_sampler("tpe", 0), optuna.samplers.TPESampler)
    assert isinstance(make_sampler("random", 0), optuna.samplers.RandomSampler)
    expected = {
        "hyperband": optuna.pruners.HyperbandPruner,
        "median": optuna.pruners.MedianPruner,
        "sha": optuna.pruners.SuccessiveHalvingPruner,
        "none": optuna.pruners.NopPruner,
    }
    assert set(expected) == set(PRUNERS)
    for name, cls in expected.items():
        assert isinstance(make_pruner(name, 12), cls)
    with pytest.raises(UsageError, match="unknown sampler 'xx'"):
        make_sampler("xx", 0)
    with pytest.raises(UsageError, match="unknown pruner 'xx'"):
        make_pruner("xx", 10)
