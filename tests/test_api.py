"""The Python API: keras-tuner build(hp) functions and HyperModels on the Optuna engine,
space references and config files, composition with the built-in helpers."""

from __future__ import annotations

import keras
import keras_tuner
import mlflow
import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

import automl
from automl import UsageError
from automl.record import StudyRecord, ranked_complete
from automl.spaces.blocks import choose_activation
from automl.spaces.training import choose_optimizer
from tests.conftest import mlflow_url, sqlite_url


def _options(tmp_path, study: str, **options) -> dict:
    """Budget and file locations of a small real search in tmp_path."""
    return {
        "study": study,
        "storage": sqlite_url(tmp_path / "automl.db"),
        "tracking_uri": mlflow_url(tmp_path / "mlflow.db"),
        "out": tmp_path / "out" / study,
        "max_epochs": 3,
        "pruner": "none",
        **options,
    }


def _trial_params(tmp_path, study: str) -> dict[str, dict[str, str]]:
    """MLflow params of each trial run of a study, by run name."""
    client = mlflow.MlflowClient(mlflow_url(tmp_path / "mlflow.db"))
    experiment = client.get_experiment_by_name(study)
    runs = client.search_runs([experiment.experiment_id], "tags.`automl.role` = 'trial'")
    return {run.info.run_name: run.data.params for run in runs}


# -- the keras-tuner tutorial, unchanged ----------------------------------------------------


def build_model(hp):
    """The keras-tuner getting-started `build_model`, for 64 digit features."""
    model = keras.Sequential()
    model.add(keras.layers.Input((64,)))
    for i in range(hp.Int("num_layers", 1, 3)):
        model.add(
            keras.layers.Dense(
                units=hp.Int(f"units_{i}", min_value=32, max_value=512, step=32),
                activation=hp.Choice("activation", ["relu", "tanh"]),
            )
        )
    if hp.Boolean("dropout"):
        model.add(keras.layers.Dropout(rate=0.25))
    model.add(keras.layers.Dense(10, activation="softmax"))
    learning_rate = hp.Float("lr", min_value=1e-4, max_value=1e-2, sampling="log")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def test_keras_tuner_build_model_runs_unchanged(tmp_path, caplog):
    """search(build_model, dataset="digits") trains the tutorial function's models; each hp
    call is a real Optuna distribution; the result has best params, model and study; the
    finish reads the Sequential's input (final model, model card) without a warning."""
    result = automl.search(build_model, dataset="digits", trials=3, **_options(tmp_path, "kt"))
    assert not [r.getMessage() for r in caplog.records if r.name == "automl"]
    assert "float32 `(n, 64)`" in (tmp_path / "out" / "kt" / "MODEL.md").read_text()
    study = result.study
    assert isinstance(study, optuna.Study) and len(study.trials) == 3
    assert StudyRecord.of(study).space.endswith("test_api:build_model")
    dists = study.trials[0].distributions
    assert dists["num_layers"] == IntDistribution(1, 3)
    assert dists["units_0"] == IntDistribution(32, 512, step=32)
    assert dists["activation"] == CategoricalDistribution(["relu", "tanh"])
    assert dists["lr"] == FloatDistribution(1e-4, 1e-2, log=True)
    # The engine's best: a tie on the metric goes to the lower validation loss, where
    # Optuna's best_trial would take the earlier trial.
    assert result.best_params == ranked_complete(study)[0].params
    assert isinstance(result.best_model, keras.Model)
    # Seed 0 reaches 0.956 here (chance: 0.10); 0.85 leaves room for thread-order noise.
    assert result.summary["test"]["metrics"]["accuracy"] > 0.85
    logged = _trial_params(tmp_path, "kt")
    for trial in study.trials:
        params = logged[f"trial-{trial.number}"]
        assert {k: params[k] for k in trial.params} == {k: str(v) for k, v in trial.params.items()}


@pytest.mark.slow  # 15-25 s: beyond the default suite's 15 minutes
def test_an_uncompiled_model_is_compiled_by_the_engine(tmp_path):
    """A build(hp) that returns an uncompiled model trains with Adam and the task's loss."""

    def build(hp):
        inputs = keras.Input((64,))
        x = keras.layers.Dense(hp.Choice("units", [32, 64]), activation="relu")(inputs)
        return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))

    result = automl.search(build, dataset="digits", trials=1, **_options(tmp_path, "bare"))
    assert result.study.trials[0].state.name == "COMPLETE"
    # One 3-epoch trial reaches 0.842 here (chance: 0.10); 0.70 leaves room for noise.
    assert result.summary["test"]["metrics"]["accuracy"] > 0.70


# -- HyperModels ----------------------------------------------------------------------------


class DigitsHyperModel(keras_tuner.HyperModel):
    """A HyperModel with its own fit, tuning the batch size and shuffling as in the docs."""

    def build(self, hp):
        model = keras.Sequential(
            [
                keras.layers.Input((64,)),
                keras.layers.Dense(hp.Int("units", 32, 128, step=32), activation="relu"),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    def fit(self, hp, model, *args, **kwargs):
        return model.fit(
            *args,
            batch_size=hp.Choice("batch_size", [16, 32]),
            shuffle=hp.Boolean("shuffle"),
            **kwargs,
        )


@pytest.mark.slow  # 20-50 s on a loaded day: beyond the default suite's 15 minutes
def test_hypermodel_with_its_own_fit_runs_unchanged(tmp_path):
    """A keras_tuner.HyperModel subclass builds and fits through its own methods; params
    sampled inside fit are real distributions and reach MLflow too."""
    result = automl.search(
        DigitsHyperModel(), dataset="digits", trials=2, **_options(tmp_path, "hm")
    )
    trial = result.study.trials[0]
    assert trial.state.name == "COMPLETE"
    assert trial.distributions["batch_size"] == CategoricalDistribution([16, 32])
    assert set(trial.params) == {"units", "batch_size", "shuffle"}
    assert set(_trial_params(tmp_path, "hm")["trial-0"]) >= {"units", "batch_size", "shuffle"}
    # Two 3-epoch trials reach 0.919 here (chance: 0.10); 0.80 leaves room for noise.
    assert result.summary["test"]["metrics"]["accuracy"] > 0.80


@pytest.mark.slow  # 20-50 s on a loaded day: beyond the default suite's 15 minutes
def test_hypermodel_class_without_fit_override(tmp_path):
    """A HyperModel class (not an instance) with only `build` is instantiated and run."""

    class Small(keras_tuner.HyperModel):
        def build(self, hp):
            inputs = keras.Input((64,))
            x = keras.layers.Dense(hp.Int("units", 16, 64, step=16), activation="relu")(inputs)
            return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))

    result = automl.search(Small, dataset="digits", trials=1, **_options(tmp_path, "cls"))
    assert result.study.trials[0].state.name == "COMPLETE"
    assert StudyRecord.of(result.study).space.endswith("Small")


# -- composition, references, config files -------------------------------------------------


def composed(hp, spec):
    """A user space built from automl's own helpers (activation, optimizer)."""
    inputs, x = spec.inputs()
    x = keras.layers.Dense(hp.Int("units", 16, 64), activation=choose_activation(hp))(x)
    outputs = keras.layers.Dense(spec.num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        choose_optimizer(hp, spec), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


@pytest.mark.slow  # 20-50 s on a loaded day: beyond the default suite's 15 minutes
def test_user_spaces_compose_built_in_helpers(tmp_path):
    """choose_activation and choose_optimizer sample their params inside a user's space."""
    result = automl.search(composed, dataset="iris", trials=2, **_options(tmp_path, "comp"))
    params = result.study.trials[0].params
    assert {"units", "activation", "optimizer", "learning_rate", "schedule"} <= set(params)


@pytest.mark.slow  # 15-25 s: beyond the default suite's 15 minutes
def test_module_reference_and_keyword_space(tmp_path, monkeypatch):
    """`package.module:function` imports from the working folder; space= works too."""
    (tmp_path / "my_spaces.py").write_text(
        "from tests.test_api import composed as build\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = automl.search(
        dataset="iris", space="my_spaces:build", trials=1, **_options(tmp_path, "ref")
    )
    assert StudyRecord.of(result.study).space == "my_spaces:build"
    assert result.study.trials[0].state.name == "COMPLETE"


@pytest.mark.parametrize("suffix", ["toml", "yaml"])
@pytest.mark.slow  # 20-50 s on a loaded day: beyond the default suite's 15 minutes
def test_config_file_fixes_and_narrows_a_built_in_space(tmp_path, suffix):
    """A config restricting mlp to Adam, 2-3 layers and relu/gelu: every trial obeys, the
    fixed optimizer is logged but never sampled."""
    text = {
        "toml": 'space = "mlp"\n[params]\noptimizer = "adam"\nlayers = {min = 2, max = 3}\n'
        'activation = ["relu", "gelu"]\n',
        "yaml": "space: mlp\nparams:\n  optimizer: adam\n  layers: {min: 2, max: 3}\n"
        "  activation: [relu, gelu]\n",
    }[suffix]
    path = tmp_path / f"narrow.{suffix}"
    path.write_text(text)
    result = automl.search(
        str(path), dataset="iris", trials=3, sampler="random", **_options(tmp_path, suffix)
    )
    for trial in result.study.trials:
        assert "optimizer" not in trial.distributions
        assert trial.distributions["layers"] == IntDistribution(2, 3)
        assert trial.distributions["activation"] == CategoricalDistribution(["relu", "gelu"])
    assert _trial_params(tmp_path, suffix)["trial-0"]["optimizer"] == "adam"


def test_api_errors_are_usage_errors(tmp_path):
    """Bad spaces and datasets raise UsageError before any study exists."""
    with pytest.raises(UsageError, match="must be a build\\(hp\\) function"):
        automl.search(42, dataset="iris", **_options(tmp_path, "x"))
    with pytest.raises(UsageError, match="dataset must be a built-in name"):
        automl.search(build_model, dataset=[1, 2], **_options(tmp_path, "x"))
    with pytest.raises(UsageError, match="give the space once"):
        automl.search(build_model, dataset="digits", space="mlp", **_options(tmp_path, "x"))
    assert not (tmp_path / "automl.db").exists()


def test_arrays_as_data(tmp_path):
    """dataset=(x, y) splits the arrays (string labels too) and searches them."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3)).astype("float32")
    y = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    result = automl.search("mlp", dataset=(x, y), trials=1, **_options(tmp_path, "arr"))
    assert StudyRecord.of(result.study).dataset == "arrays"
    # The classes are linearly separable: 1.0 here on 24 test rows; 0.85 allows 3 misses.
    assert result.summary["test"]["metrics"]["accuracy"] > 0.85


@pytest.mark.slow  # 15-25 s: beyond the default suite's 15 minutes
def test_hypermodel_fit_may_return_its_metrics(tmp_path):
    """keras-tuner lets `fit` return a dict of metrics; when it trains without passing
    our callbacks on, that dict is the trial's value."""

    class Quiet(keras_tuner.HyperModel):
        def build(self, hp):
            inputs = keras.Input((64,))
            x = keras.layers.Dense(hp.Int("units", 16, 64, step=16), activation="relu")(inputs)
            return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))

        def fit(self, hp, model, x, y, validation_data, epochs, **kwargs):
            model.fit(x, y, epochs=epochs, verbose=0)
            _, accuracy = model.evaluate(*validation_data, verbose=0)
            return {"val_accuracy": accuracy}

    result = automl.search(Quiet, dataset="digits", trials=1, **_options(tmp_path, "quiet"))
    trial = result.study.trials[0]
    assert trial.state.name == "COMPLETE"
    # Its own 3-epoch fit reaches 0.837 val accuracy here (chance: 0.10); margin 0.14.
    assert trial.value > 0.70


def without_accuracy(hp):
    """Compiled by the user without the metric the search scores."""
    inputs = keras.Input((64,))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(inputs))
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


@pytest.mark.slow  # 15-25 s: beyond the default suite's 15 minutes
def test_a_model_without_the_scored_metric_fails_with_the_fix(tmp_path):
    """The trial fails in one line that says which metric to compile with."""
    result = automl.search(
        without_accuracy, dataset="digits", trials=1, **_options(tmp_path, "nometric")
    )
    reason = result.study.trials[0].user_attrs["reason"]
    assert "reports no val_accuracy" in reason and "metrics=['accuracy']" in reason
    assert result.best_model is None and result.summary["best"] is None


def test_estimator_with_no_completed_trial_says_so():
    """AutoClassifier.fit raises a UsageError instead of keeping no model."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    with pytest.raises(UsageError, match="no trial completed in 1 trials"):
        automl.AutoClassifier(without_accuracy, trials=1, max_epochs=1).fit(x, y)


@pytest.mark.parametrize(
    ("x", "y", "options", "match"),
    [
        (np.zeros((10, 2)), np.zeros(9), {}, "same length, but got 10 and 9"),
        (np.zeros((10, 2)), np.zeros((10, 2)), {}, "one label or value per row"),
        (np.zeros(10), np.arange(10) % 2, {}, "cannot tell what x of shape"),
        (np.zeros((10, 2)), np.arange(10) % 2, {"task": "ranking"}, "task must be"),
        (np.zeros((6, 2)), np.arange(6) % 2, {}, "too little data to split"),
    ],
)
def test_array_mistakes_are_usage_errors(x, y, options, match):
    from automl.data import from_arrays

    with pytest.raises(UsageError, match=match):
        from_arrays(x, y, **options)
