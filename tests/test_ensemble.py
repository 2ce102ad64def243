"""The final model: greedy ensemble selection, one saveable Keras model, flip (and shift)
TTA on images, chosen on validation; and the fallback when it cannot be saved."""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from automl.data import Dataset, load_dataset
from automl.ensemble import average_model, select
from automl.export import _write_final
from automl.models import load_model, predict_raw
from automl.objective import Objective
from automl.scoring import score_of
from tests.test_export import _predict_in_fresh_process

ACCURACY = Objective("val_accuracy", "maximize")


def _noisy(y: np.ndarray, wrong: np.ndarray, classes: int = 3) -> np.ndarray:
    """One-hot-ish probabilities that are right except on the rows in `wrong`."""
    labels = y.copy()
    labels[wrong] = (labels[wrong] + 1) % classes
    output = np.full((len(y), classes), 0.1)
    output[np.arange(len(y)), labels] = 0.8
    return output


def _accuracy(y: np.ndarray):
    return lambda output: score_of(y, output, "classification", 3, "accuracy")


def test_selection_averages_models_whose_errors_differ():
    """Three models each wrong on a different third: any one scores 2/3, their average
    is right wherever two of them are, so all three are chosen alike."""
    y = np.arange(90) % 3
    thirds = np.array_split(np.arange(90), 3)
    predictions = [_noisy(y, part) for part in thirds]
    weights, value = select(predictions, _accuracy(y), ACCURACY.is_better)
    assert _accuracy(y)(predictions[0]) == pytest.approx(2 / 3)
    assert value == 1.0
    assert sum(weights) == pytest.approx(1.0) and all(w > 0 for w in weights)


def test_selection_keeps_the_best_alone_when_others_only_hurt():
    y = np.arange(90) % 3
    best = _noisy(y, np.arange(0, 90, 10))  # 90 % right
    worse = [_noisy(y, np.arange(0, 90, 2)), _noisy(y, np.arange(1, 90, 2))]  # 50 % each
    weights, value = select([best, *worse], _accuracy(y), ACCURACY.is_better)
    assert weights == [1.0, 0.0, 0.0] and value == pytest.approx(0.9)


def _trained(seed: int, x: np.ndarray, y: np.ndarray) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((x.shape[1],), name="features")
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, verbose=0)
    return model


@pytest.mark.slow  # 20-50 s on a loaded day: beyond the default suite's 15 minutes
def test_the_ensemble_is_one_model_that_loads_in_a_fresh_process(tmp_path):
    """The weighted average of two iris models saves to one .keras file that plain
    Keras loads in safe mode elsewhere and that predicts, value by value, the weighted
    sum of its members' predictions."""
    data = load_dataset("iris", seed=0)
    x, y = data.x_train.astype("float32"), data.y_train
    members = [_trained(seed, x, y) for seed in (1, 2)]
    expected = 0.25 * members[0].predict(x, verbose=0) + 0.75 * members[1].predict(x, verbose=0)
    ensemble = average_model(members, [0.25, 0.75])
    np.testing.assert_allclose(ensemble.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    ensemble.save(tmp_path / "ensemble.keras")
    fresh = _predict_in_fresh_process(tmp_path / "ensemble.keras", x, tmp_path)
    np.testing.assert_allclose(fresh, expected, rtol=1e-5, atol=1e-6)


class _Unsaveable(keras.layers.Layer):
    """A user's layer whose config holds an object Keras cannot serialize: saving fails."""

    def __init__(self, lock: object = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lock = lock or threading.Lock()

    def call(self, x):
        return x * 2.0

    def get_config(self) -> dict:
        return {**super().get_config(), "lock": self.lock}


def test_an_unsaveable_final_model_falls_back_to_the_best_checkpoint(tmp_path, caplog):
    data = load_dataset("iris", seed=0)
    x, y = data.x_train.astype("float32"), data.y_train
    best = _trained(1, x, y)
    checkpoint = tmp_path / "trial-0.keras"
    best.save(checkpoint)
    inputs = keras.Input((x.shape[1],))
    unsaveable = keras.Model(inputs, _Unsaveable()(best(inputs)))

    class Trial:  # what _write_final reads of the best trial
        number = 0

    facts = {"description": "ensemble of trial 0 ×0.50, trial 3 ×0.50", "members": []}
    with caplog.at_level(logging.WARNING, logger="automl"):
        model, written = _write_final((unsaveable, facts), Trial, checkpoint, tmp_path / "b.keras")
    assert "cannot be saved as one Keras model" in caplog.text
    assert "exporting the best single model instead" in caplog.text
    assert written["members"] == [{"trial": 0, "weight": 1.0}] and written["fallback"]
    np.testing.assert_allclose(
        load_model(tmp_path / "b.keras").predict(x, verbose=0), best.predict(x, verbose=0)
    )
    np.testing.assert_allclose(model.predict(x, verbose=0), best.predict(x, verbose=0))


@pytest.mark.slow  # 15-25 s: beyond the default suite's 15 minutes
def test_images_get_the_best_of_single_ensemble_and_both_ttas_on_validation(
    cifar_search, cifar_root, tmp_path
):
    """On the CIFAR-10 slice, the search compares the best model, the ensemble, flip TTA
    and flip + shift TTA on validation; best_model.keras is the option that scored best,
    predicts in a fresh process exactly what the in-process model does, and its
    validation score is the one recorded for that option."""
    summary = json.loads((cifar_search.out / "summary.json").read_text())
    final = summary["final"]
    scores = final["val_scores"]
    assert set(scores) == {"best", "ensemble", "flip_tta", "flip_shift_tta"}  # all tried
    chosen = final["chosen"]
    assert chosen == (
        "flip_shift_tta"
        if final["shift_tta"]
        else "flip_tta"
        if final["flip_tta"]
        else "ensemble"
        if len(final["members"]) > 1
        else "best"
    )
    assert scores[chosen] == max(scores.values())
    assert sum(m["weight"] for m in final["members"]) == pytest.approx(1.0, abs=1e-3)

    model = cifar_search.result.best_model
    data = load_dataset("cifar10", data_dir=cifar_root, seed=0)
    own = predict_raw(model, data, data.x_val)
    assert score_of(data.y_val, own, "classification", 10, "accuracy") == pytest.approx(
        scores[chosen],
        abs=1e-5,  # summary.json rounds to 5 decimals
    )
    images = data.x_test[:64]  # uint8 pixels, as the exported model takes them
    fresh = _predict_in_fresh_process(cifar_search.out / "best_model.keras", images, tmp_path)
    np.testing.assert_allclose(fresh, model.predict(images, verbose=0), rtol=1e-4, atol=1e-5)
    assert summary["test"]["metrics"]["accuracy"] == pytest.approx(
        score_of(
            data.y_test, predict_raw(model, data, data.x_test), "classification", 10, "accuracy"
        )
    )


def test_ties_on_validation_accuracy_go_to_the_more_confident_model():
    """On a small validation split many models get every row right: the one with the
    lower log loss leads; a strictly better score still comes first; regression keeps
    the trials' order on ties."""
    from types import SimpleNamespace

    from automl.engine._final import _scorer, best_first

    y = np.array([0, 1, 2, 1])
    data = SimpleNamespace(y_val=y, task="classification", num_classes=3)
    sure, unsure = np.eye(3)[y] * 0.9 + 0.1 / 3, np.eye(3)[y] * 0.4 + 0.6 / 3
    wrong = unsure.copy()
    wrong[0] = [0.2, 0.7, 0.1]
    objective = Objective("val_accuracy", "maximize")
    score = _scorer(data, objective)
    assert best_first([unsure, sure], data, score, objective) == [1, 0]
    assert best_first([wrong, unsure, sure], data, score, objective) == [2, 1, 0]
    regression = SimpleNamespace(y_val=np.array([1.0, 2.0]), task="regression", num_classes=1)
    rmse = Objective("val_rmse", "minimize")
    same = np.array([[1.0], [2.5]])
    assert best_first([same, same], regression, _scorer(regression, rmse), rmse) == [0, 1]


def _digit_images() -> tuple[Dataset, keras.Model]:
    """Digits as 8x8 images, and a small CNN trained on them for one epoch (well short
    of what the views could add)."""
    from automl.data import from_arrays
    from tests._digits import digits_as

    data = from_arrays(*digits_as("image"), kind="image")
    keras.utils.set_random_seed(0)
    inputs = keras.Input(data.x_train.shape[1:])
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(data.x_train, data.y_train, epochs=1, verbose=0)
    return data, model


def test_shift_tta_is_tried_when_it_fits_and_kept_only_when_it_scores_better(caplog):
    """Without a deadline both TTAs are scored on validation and the best option is
    the final model; with no time left before the budget's end, shift TTA is left out
    with one line that says why."""
    from automl.engine._final import FinalModel, _meets, _scorer, _try_tta

    data, model = _digit_images()
    score = _scorer(data, ACCURACY)
    best = score(predict_raw(model, data, data.x_val))
    final = FinalModel(model, [{"trial": 0, "weight": 1.0}], False, {"best": best}, "accuracy")
    _try_tta(final, data, score, ACCURACY, None, functools.partial(_meets, None, data, final))
    scores = final.val_scores
    assert set(scores) == {"best", "flip_tta", "flip_shift_tta"}
    assert scores[final.chosen] == max(scores.values())
    chosen = final.chosen
    assert score(predict_raw(final.model, data, data.x_val)) == pytest.approx(scores[chosen])
    assert final.shift_tta <= final.flip_tta  # shift TTA always holds the flip pair

    late = FinalModel(model, [{"trial": 0, "weight": 1.0}], False, {"best": best}, "accuracy")
    with caplog.at_level(logging.INFO, logger="automl"):
        _try_tta(late, data, score, ACCURACY, time.monotonic(), lambda *_: True)
    assert set(late.val_scores) == {"best", "flip_tta"} and not late.shift_tta
    assert "shift TTA not tried" in caplog.text


def test_options_that_break_the_searchs_limits_are_left_out(caplog):
    """Under `--max-latency-ms` or `--max-params` the final model stays within them: TTA
    (two or six passes) and an ensemble (its members' parameters added) are each left
    out, with one line saying why and the reason in summary.json's `left_out`, when they
    break a limit the single model meets; a limit they meet leaves them in."""
    from automl.engine._final import FinalModel, _meets, _scorer, _try_ensemble, _try_tta
    from automl.engine._limits import Limits

    data, model = _digit_images()
    score = _scorer(data, ACCURACY)
    best = score(predict_raw(model, data, data.x_val))

    def single() -> FinalModel:
        return FinalModel(model, [{"trial": 0, "weight": 1.0}], False, {"best": best}, "accuracy")

    def limited(final: FinalModel, **limits: float) -> functools.partial:
        return functools.partial(_meets, Limits(**limits), data, final)

    final = single()
    with caplog.at_level(logging.INFO, logger="automl"):
        _try_tta(final, data, score, ACCURACY, None, limited(final, max_latency_ms=1e-9))
    assert final.model is model and not final.flip_tta and set(final.val_scores) == {"best"}
    assert "the final model: flip TTA left out (" in caplog.text
    assert "ms per example, over the limit of 1e-09)" in caplog.text
    assert set(final.facts()["left_out"]) == {"flip_tta"}
    final = single()
    _try_tta(final, data, score, ACCURACY, None, limited(final, max_latency_ms=1e6))
    assert set(final.val_scores) == {"best", "flip_tta", "flip_shift_tta"}
    assert "left_out" not in final.facts()

    # A limit flip TTA meets and shift TTA breaks: flip TTA is scored, shift TTA is not.
    final = single()
    _try_tta(final, data, score, ACCURACY, None, lambda _, what: what != "flip_shift_tta")
    assert set(final.val_scores) == {"best", "flip_tta"} and not final.shift_tta

    # Two members each wrong, unsure, on rows where the other is right and sure: their
    # average beats either, and has twice the parameters.
    y = data.y_val
    halves = np.array_split(np.arange(len(y)), 2)
    predictions = [np.eye(10)[y] * 0.6 + 0.04, np.eye(10)[y] * 0.6 + 0.04]
    for part, output in zip(halves, predictions, strict=True):
        wrong = part[: len(part) // 3]
        output[wrong] = np.eye(10)[(y[wrong] + 1) % 10] * 0.3 + 0.04
    kept = [SimpleNamespace(number=0), SimpleNamespace(number=1)]
    twin = keras.models.clone_model(model)
    params = model.count_params()
    for limit, joined in ((params, False), (2 * params, True)):
        final = single()
        final.val_scores["best"] = score(predictions[0])
        meets = limited(final, max_params=limit)
        with caplog.at_level(logging.INFO, logger="automl"):
            _try_ensemble(final, [model, twin], kept, predictions, score, ACCURACY, meets)
        assert final.val_scores["ensemble"] > final.val_scores["best"]
        assert (len(final.members) == 2) is joined and (final.model is model) is not joined
        assert ("ensemble" in final.left_out) is not joined
    assert f"the ensemble left out ({2 * params:,} parameters, over the limit of {params:,})" in (
        caplog.text
    )


def test_where_tta_on_the_ensemble_breaks_a_limit_tta_on_the_best_model_is_tried(
    monkeypatch, caplog
):
    """TTA on an ensemble multiplies the passes of every member: where that breaks
    `--max-latency-ms`, TTA on the best model alone is scored instead, and becomes the
    final model when it beats the ensemble on validation. Latency is counted in forward
    passes of one member here (a timed one would not separate 2 passes from 4)."""
    from automl.engine import _final
    from automl.engine._final import FinalModel, _meets, _scorer, _try_ttas
    from automl.engine._limits import Limits
    from automl.spaces.blocks import with_flip_tta

    data, model = _digit_images()
    keras.utils.set_random_seed(1)
    twin = keras.models.clone_model(model)
    twin.compile("adam", "sparse_categorical_crossentropy")
    twin.fit(data.x_train, data.y_train, epochs=1, verbose=0)
    score = _scorer(data, ACCURACY)
    ensemble = average_model([model, twin], [0.5, 0.5])
    members = [{"trial": 0, "weight": 0.5}, {"trial": 1, "weight": 0.5}]

    def passes(built: keras.Model, _: object) -> float:
        views = (
            6 if built.name.endswith("_flip_shift_tta") else 2 if "_flip_tta" in built.name else 1
        )
        return views * built.count_params() / model.count_params()

    monkeypatch.setattr(_final, "latency_ms", passes)
    for ensemble_score, tta_wins in ((0.0, True), (1.0, False)):  # beaten, unbeatable
        scores = {"best": score(predict_raw(model, data, data.x_val)), "ensemble": ensemble_score}
        final = FinalModel(ensemble, members, False, scores, "accuracy")
        meets = functools.partial(_meets, Limits(max_latency_ms=3.0), data, final)
        with caplog.at_level(logging.INFO, logger="automl"):
            _try_ttas((final, data, score, ACCURACY, None, meets), (model, 0))
        # The ensemble's 4 passes broke the limit; the best model's 2 met it, its 6 not.
        assert set(final.left_out) == {"ensemble_flip_tta", "flip_shift_tta"}
        flip = score(predict_raw(with_flip_tta(model), data, data.x_val))
        assert set(final.val_scores) == {"best", "ensemble", "flip_tta"}
        assert final.val_scores["flip_tta"] == pytest.approx(flip)  # the best model's
        assert final.flip_tta is tta_wins and not final.shift_tta
        if tta_wins:
            assert final.members == [{"trial": 0, "weight": 1.0}] and final.chosen == "flip_tta"
            assert final.describe() == "trial 0 with flip test-time augmentation"
            assert score(predict_raw(final.model, data, data.x_val)) == pytest.approx(flip)
        else:
            assert final.members == members and final.model is ensemble
    # About 4 passes: the ensemble's own layers add a few parameters to its members'.
    assert "the final model: flip TTA on the ensemble left out (4.0" in caplog.text
    assert "ms per example, over the limit of 3)" in caplog.text
