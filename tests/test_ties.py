"""Ties on the validation metric, common on small validation splits (wine's 29 rows, where
many epochs and trials reach an accuracy of 1.0), go to the lower validation loss: at
the epoch a trial restores, the trials kept, the study's best, and the exported model."""

from __future__ import annotations

from types import SimpleNamespace

import keras
import numpy as np
import optuna
import pytest
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from automl.data import load_dataset
from automl.engine._callbacks import EarlyStoppingOnTies, best_epoch_of
from automl.engine._checkpoints import kept_trials
from automl.engine._finish import _final
from automl.export import best_trial_or_none
from automl.models import load_model, predict_raw
from automl.objective import Objective
from automl.record import ranked_trials
from tests.conftest import sqlite_url

ACCURACY = Objective("val_accuracy", "maximize")


def test_the_best_epoch_is_the_best_value_then_the_lowest_loss():
    history = [
        {"val_accuracy": 0.9, "val_loss": 0.5},
        {"val_accuracy": 1.0, "val_loss": 0.8},  # first to 1.0, barely trained
        {"val_accuracy": 1.0, "val_loss": 0.3},
        {"val_accuracy": 0.95, "val_loss": 0.1},  # a lower loss does not beat a better value
        {"val_accuracy": 1.0, "val_loss": 0.3},  # an equal loss: the earlier epoch stays
    ]
    assert best_epoch_of(history, "val_accuracy", ACCURACY.is_better) == 2
    rmse = Objective("val_rmse", "minimize")
    regression = [{"val_rmse": 2.0}, {"val_rmse": 1.0}, {"val_rmse": 1.0}]  # no loss logged
    assert best_epoch_of(regression, "val_rmse", rmse.is_better) == 1


def test_early_stopping_restores_the_tied_epoch_with_the_lowest_loss():
    """A real fit on wine: validation accuracy reaches 1.0 early and the loss goes on
    falling; the weights restored are those of the lowest-loss epoch among the tied
    ones (Keras' own EarlyStopping keeps the first), and patience restarts with them."""
    x, y = load_wine(return_X_y=True)
    x, x_val, y, y_val = train_test_split(x, y, test_size=29, stratify=y, random_state=1)
    scaler = StandardScaler().fit(x)
    x, x_val = scaler.transform(x), scaler.transform(x_val)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((x.shape[1],)), keras.layers.Dense(3, activation="softmax")]
    )
    model.compile(
        keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    stop = EarlyStoppingOnTies("val_accuracy", mode="max", patience=3, restore_best_weights=True)
    fit = model.fit(x, y, validation_data=(x_val, y_val), epochs=40, callbacks=[stop], verbose=0)
    logs = [{k: v[i] for k, v in fit.history.items()} for i in range(len(fit.history["loss"]))]
    best = best_epoch_of(logs, "val_accuracy", ACCURACY.is_better)
    first_best = int(np.argmax(fit.history["val_accuracy"]))
    assert stop.best_epoch == best > first_best  # the tie-break mattered here
    assert logs[best]["val_loss"] < logs[first_best]["val_loss"]
    restored = model.evaluate(x_val, y_val, verbose=0, return_dict=True)
    assert restored["loss"] == pytest.approx(logs[best]["val_loss"], rel=1e-4)
    assert len(logs) >= best + 1 + 3  # it trained its patience past the last tie-break


def _study(tmp_path, values: list[float], losses: list[float | None]) -> optuna.Study:
    """Complete trials with these values and recorded losses, each with a model file."""
    study = optuna.create_study(storage=sqlite_url(tmp_path / "ties.db"), direction="maximize")
    for number, (value, loss) in enumerate(zip(values, losses, strict=True)):
        attrs = {"model_path": str(tmp_path / f"trial-{number}.keras")}
        attrs |= {} if loss is None else {"val_loss": loss}
        study.add_trial(optuna.trial.create_trial(value=value, user_attrs=attrs))
    return study


def test_the_study_best_and_the_kept_models_break_ties_on_the_loss(tmp_path):
    study = _study(tmp_path, [1.0, 1.0, 1.0, 1.0, 0.9], [0.9, None, 0.2, 0.4, 0.1])
    for number in range(5):
        (tmp_path / f"trial-{number}.keras").touch()
    assert best_trial_or_none(study).number == 2  # Optuna's best_trial is trial 0
    kept = [t.number for t in kept_trials(study, ACCURACY)]
    assert kept == [2, 3, 0, 1, 4]  # tied on 1.0 by loss (none recorded: last), then 0.9
    assert [t.number for t in ranked_trials(study)] == kept  # `automl show`, MLflow report


def _confident(model: keras.Model, temperature: float) -> keras.Model:
    """The same predicted classes, with more or less confidence."""
    inputs = keras.Input(model.inputs[0].shape[1:])
    logits = model.layers[-1](inputs)
    return keras.Model(inputs, keras.layers.Softmax()(logits / temperature))


def test_a_single_model_chosen_over_the_study_best_is_the_one_exported(tmp_path):
    """Two checkpoints tied on validation accuracy: the study's best by its recorded
    loss is the unsure one, scikit-learn's log loss prefers the sure one. The final
    model handed to the export must then be the sure one, not the best checkpoint
    (before, a single model that was not the study's best was silently not exported)."""
    data = load_dataset("iris", seed=0)
    keras.utils.set_random_seed(0)
    logits = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    net = keras.Sequential([logits, keras.layers.Softmax()])
    net.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    net.fit(data.x_train.astype("float32"), data.y_train, epochs=60, verbose=0)
    unsure, sure = _confident(logits, 10.0), _confident(logits, 1.0)
    unsure.save(tmp_path / "trial-0.keras")
    sure.save(tmp_path / "trial-1.keras")
    study = _study(tmp_path, [0.9, 0.9], [0.1, 0.5])
    limits = SimpleNamespace(max_params=None, max_latency_ms=None)
    session = SimpleNamespace(
        study=study, data=data, objective=ACCURACY, budget_end=None, config=limits
    )
    model, facts = _final(session)
    assert facts["members"] == [{"trial": 1, "weight": 1.0}]
    assert model is not None  # exported instead of trial 0's checkpoint
    np.testing.assert_allclose(
        predict_raw(model, data, data.x_val),
        predict_raw(load_model(tmp_path / "trial-1.keras"), data, data.x_val),
        rtol=1e-5,
    )


def test_the_long_training_repeats_the_tied_configuration_with_the_lowest_loss(tmp_path):
    """Explore, then exploit: of configurations tied on the metric, the one with the
    lower validation loss is the one trained long."""
    from automl.engine._phases import make_split, start_exploiting

    study = _study(tmp_path, [1.0, 1.0, 0.9], [0.6, 0.2, 0.1])
    split = make_split(3000.0, quickest_s=100.0, full_s=300.0, deadline=3000.0)
    assert split is not None and split.exploit_n == 1
    assert start_exploiting(study, split) == [1]
