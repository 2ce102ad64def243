"""automl.export: best_model.keras that takes raw inputs, summary.json, copies, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import keras
import numpy as np
import optuna
import pytest

from automl import UsageError
from automl import export as automl_export
from automl.data import load_dataset
from automl.models import save_plain
from tests.conftest import cli_env, sqlite_url

SUMMARY_KEYS = {
    "study", "dataset", "task", "space", "best", "test", "trials", "model_path", "plan", "spent",
    "final", "baseline",
}  # fmt: skip


def _predict_in_fresh_process(model_path: Path, inputs: np.ndarray, tmp_path: Path) -> np.ndarray:
    """Load the .keras file in a new Python and predict, as the README says to: a model
    of Keras' own layers with plain Keras in safe mode (automl never imported), one with
    automl's layers (`automl>` registered names, e.g. the tabular space's periodic
    embeddings) with `automl.load_model`."""
    np.save(tmp_path / "inputs.npy", inputs)
    with zipfile.ZipFile(model_path) as archive:
        ours = '"automl>' in archive.read("config.json").decode()
    load = (
        f"import automl; model = automl.load_model({str(model_path)!r})"
        if ours
        else f"model = keras.models.load_model({str(model_path)!r}, safe_mode=True)"
    )
    code = textwrap.dedent(f"""
        import sys
        import keras, numpy as np
        {load}
        np.save({str(tmp_path / "outputs.npy")!r},
                model.predict(np.load({str(tmp_path / "inputs.npy")!r}), verbose=0))
        assert {ours} or "automl" not in sys.modules
    """)
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        env=cli_env(),
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
    )
    return np.load(tmp_path / "outputs.npy")


def test_summary_json_has_the_documented_keys(iris_search):
    """summary.json on disk is the returned summary, with every documented key."""
    summary = json.loads((iris_search.out / "summary.json").read_text())
    assert summary == json.loads(json.dumps(iris_search.result.summary))
    assert set(summary) == SUMMARY_KEYS
    assert summary["study"] == "iris-auto" and summary["dataset"] == "iris"
    assert summary["space"] == "auto"
    assert {"trial", "params", "val_metric", "metric", "epochs", "seconds"} <= set(summary["best"])
    assert set(summary["test"]["metrics"]) == {"accuracy", "f1_macro", "log_loss", "auc"}
    assert {"complete", "pruned", "failed"} <= set(summary["trials"])
    assert Path(summary["model_path"]) == (iris_search.out / "best_model.keras").resolve()
    assert not list(iris_search.out.glob("*.tmp"))  # written atomically
    assert set(summary["spent"]) == {"setup_s", "measure_s", "trials_s", "finish_s", "total_s"}
    assert summary["plan"]["max_epochs"] == 4 and summary["plan"]["description"]


@pytest.mark.slow  # 20-50 s on a loaded day: beyond the default suite's 15 minutes
def test_exported_model_predicts_on_raw_features_in_a_fresh_process(iris_search, tmp_path):
    """best_model.keras loads in safe mode in a new process, predicts on raw iris features
    like the in-process model, and scores the summary's test accuracy on the raw test rows."""
    from sklearn.datasets import load_iris

    data = load_dataset("iris")
    raw = np.concatenate([load_iris().data.astype("float32"), data.x_test])
    fresh = _predict_in_fresh_process(iris_search.out / "best_model.keras", raw, tmp_path)
    here = iris_search.result.best_model.predict(raw, verbose=0)
    np.testing.assert_allclose(fresh, here, atol=1e-5)

    on_test = fresh[-len(data.x_test) :].argmax(axis=-1)
    accuracy = float(np.mean(on_test == data.y_test))
    assert accuracy == pytest.approx(iris_search.result.summary["test"]["metrics"]["accuracy"])


@pytest.mark.slow  # 20-50 s on a loaded day: beyond the default suite's 15 minutes
def test_exported_image_model_takes_raw_uint8_pixels(cifar_search, cifar_root, tmp_path):
    """The CIFAR-10 best model takes raw uint8 pixels (rescaling is inside the model)."""
    pixels = load_dataset("cifar10", data_dir=cifar_root)
    x_test = pixels.x_test
    assert x_test.dtype == np.uint8
    fresh = _predict_in_fresh_process(cifar_search.out / "best_model.keras", x_test, tmp_path)
    np.testing.assert_allclose(
        fresh, cifar_search.result.best_model.predict(x_test, verbose=0), atol=1e-5
    )
    accuracy = float(np.mean(fresh.argmax(axis=-1) == pixels.y_test))
    assert accuracy == pytest.approx(cifar_search.result.summary["test"]["metrics"]["accuracy"])


def test_test_metrics_are_computed_with_scikit_learn(iris_search):
    """Test accuracy, macro F1, one-vs-rest AUC and log loss are scikit-learn's own, on the
    best model's predictions for the test split, and are what the summary reports."""
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    data = load_dataset("iris")
    metrics = automl_export.test_metrics(iris_search.result.best_model, data)
    proba = iris_search.result.best_model.predict(data.x_test, verbose=0)
    predicted = proba.argmax(axis=-1)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(data.y_test, predicted))
    assert metrics["f1_macro"] == pytest.approx(f1_score(data.y_test, predicted, average="macro"))
    labels = [0, 1, 2]
    assert metrics["log_loss"] == pytest.approx(log_loss(data.y_test, proba, labels=labels))
    assert metrics["auc"] == pytest.approx(
        roc_auc_score(data.y_test, proba, multi_class="ovr", labels=labels)
    )
    assert metrics == pytest.approx(iris_search.result.summary["test"]["metrics"])


def test_export_the_best_model_to_a_file_or_a_folder(iris_search, tmp_path):
    """A `.keras` target is written as is; any other target is a folder for best_model.keras.
    Each copy holds the exported model's weights and loads with plain Keras."""
    study = iris_search.result.study
    as_file = automl_export.export_study(study, tmp_path / "deep" / "m.keras")
    assert as_file == tmp_path / "deep" / "m.keras"
    as_folder = automl_export.export_study(study, tmp_path / "folder")
    assert as_folder == tmp_path / "folder" / "best_model.keras"
    exported = keras.models.load_model(iris_search.out / "best_model.keras")
    for copy in (as_file, as_folder):
        weights = keras.models.load_model(copy).get_weights()
        for mine, theirs in zip(weights, exported.get_weights(), strict=True):
            np.testing.assert_array_equal(mine, theirs)


def _study_with(tmp_path: Path, *, complete: bool, model_path: str | None = None):
    """A real Optuna study on SQLite, with one trial (complete or failed)."""
    study = optuna.create_study(
        study_name="bare", storage=sqlite_url(tmp_path / "s.db"), direction="maximize"
    )
    trial = study.ask()
    if model_path is not None:
        trial.set_user_attr("model_path", model_path)
    study.tell(
        trial,
        0.5 if complete else None,
        state=optuna.trial.TrialState.COMPLETE if complete else optuna.trial.TrialState.FAIL,
    )
    return study


def test_export_without_a_complete_trial_is_a_usage_error(tmp_path):
    """No complete trial: the error says so and what to run."""
    study = _study_with(tmp_path, complete=False)
    with pytest.raises(
        UsageError,
        match=r"study 'bare' has no complete trial yet; run `automl "
        r"search` first",
    ):
        automl_export.export_study(study, tmp_path / "x.keras")


def test_export_with_a_missing_checkpoint_is_a_usage_error(tmp_path):
    """The best trial's file is gone: the error names the trial, the path and the fix."""
    study = _study_with(tmp_path, complete=True, model_path=str(tmp_path / "gone.keras"))
    with pytest.raises(
        UsageError,
        match=r"the model of best trial 0 is missing \(.*gone\.keras\); "
        r"rerun the search",
    ):
        automl_export.best_checkpoint(study)


@pytest.mark.slow  # 20-50 s on a loaded day: beyond the default suite's 15 minutes
def test_models_with_automl_layers_load_with_automl_load_model(tmp_path):
    """A transformer (automl's position layers) trained with label smoothing, saved as the
    engine saves checkpoints: in a fresh Python, `automl.load_model` reads it and gives
    the same predictions, and its loss is Keras' own again."""
    from optuna.trial import FixedTrial

    from automl.spaces import HyperParameters
    from search_spaces import transformer
    from tests._digits import digits_as, digits_spec

    x, _ = digits_as("text")
    point = {**transformer.starting_points(digits_spec("text"))[0], "label_smoothing": 0.1}
    model = transformer.build(HyperParameters(FixedTrial(point)), digits_spec("text"))
    expected = model.predict(x[:8], verbose=0)
    save_plain(model, tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", x[:8])
    code = textwrap.dedent(f"""
        import automl, numpy as np
        model = automl.load_model({str(tmp_path / "m.keras")!r})
        assert model.loss == "sparse_categorical_crossentropy", model.loss
        np.save("out.npy", model.predict(np.load("x.npy"), verbose=0))
    """)
    subprocess.run(
        [sys.executable, "-c", code], check=True, env=cli_env(), cwd=tmp_path, timeout=300
    )
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-5)
