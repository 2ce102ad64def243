"""automl.formats and `automl export --format`: each format written from a real search's
model, loaded in a fresh process with its own runtime (no automl; no TensorFlow for ONNX
and LiteRT), predicting what the `.keras` model predicts on the test split within the
stated tolerance; refusals that leave nothing behind."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import keras
import numpy as np
import optuna
import pytest

from automl import UsageError
from automl.data import load_dataset
from automl.ensemble import average_model
from automl.export import export_study, trial_checkpoint
from automl.formats import ATOL, FORMATS, RTOL, write_format
from automl.models import load_model
from automl.record import TrialRecord
from tests._fresh import run_fresh
from tests.conftest import cli_env, run_cli, sqlite_url
from tests.test_cli import assert_usage_error

# How each runtime loads a format and predicts: `predict(x)`, x an array or a dict of
# named inputs, as the README tells users.
LOADERS = {
    "keras": """
        import keras
        model = keras.models.load_model(PATH, safe_mode=True)
        def predict(x):
            return model.predict(x, verbose=0)
    """,
    "saved_model": """
        import tensorflow as tf
        loaded = tf.saved_model.load(PATH)
        def predict(x):
            return loaded.serve(x).numpy()
    """,
    "onnx": """
        import onnxruntime
        session = onnxruntime.InferenceSession(PATH)
        first = session.get_inputs()[0].name
        def predict(x):
            return session.run(["output_0"], x if isinstance(x, dict) else {first: x})[0]
    """,
    "litert": """
        from ai_edge_litert.interpreter import Interpreter
        runner = Interpreter(model_path=PATH).get_signature_runner()
        details = runner.get_input_details()
        first = next(iter(details))
        def predict(x):
            x = x if isinstance(x, dict) else {first: x}
            if details[first]["shape_signature"][0] != 1:  # any number of rows
                return runner(**x)["output_0"]
            rows = len(x[first])  # a model written for one row at a time
            return np.concatenate(
                [runner(**{k: v[i : i + 1] for k, v in x.items()})["output_0"] for i in range(rows)]
            )
    """,
}


def predict_fresh(fmt: str, path: Path, x: Any, cwd: Path) -> np.ndarray:
    """Load `path` with `fmt`'s runtime in a new interpreter and predict on `x`.

    The process must not import automl; for ONNX and LiteRT, not TensorFlow either.
    """
    single = not isinstance(x, dict)
    np.savez(cwd / "inputs.npz", **({"x": x} if single else x))
    code = "\n".join(
        [
            "import sys",
            "import numpy as np",
            f"PATH = {str(path)!r}",
            textwrap.dedent(LOADERS[fmt]),
            f"inputs = dict(np.load({str(cwd / 'inputs.npz')!r}, allow_pickle=True))",
            f"out = predict(inputs['x'] if {single} else inputs)",
            f"np.save({str(cwd / 'outputs.npy')!r}, np.asarray(out))",
            "assert 'automl' not in sys.modules",
            f"assert {fmt in ('keras', 'saved_model')} or 'tensorflow' not in sys.modules",
        ]
    )
    run_fresh(code, cwd)
    return np.load(cwd / "outputs.npy")


def assert_matches(fresh: np.ndarray, expected: np.ndarray) -> None:
    """Value by value within the README's tolerance."""
    assert fresh.shape == expected.shape
    np.testing.assert_allclose(fresh, expected, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("fmt", ["saved_model", "onnx", "litert"])
def test_each_format_predicts_like_the_keras_model_on_the_test_split(iris_search, tmp_path, fmt):
    """The study's final model, exported through the Python API: its runtime loads it in a
    fresh process, and on iris' raw test rows it predicts what the .keras model does."""
    written = export_study(iris_search.result.study, tmp_path / "export", format=fmt)
    assert written == tmp_path / "export" / FORMATS[fmt].file_name
    x_test = load_dataset("iris").x_test.astype("float32")
    expected = iris_search.result.best_model.predict(x_test, verbose=0)
    assert_matches(predict_fresh(fmt, written, x_test, tmp_path), expected)
    assert sorted(p.name for p in written.parent.iterdir()) == [written.name]  # no leftovers


def test_an_ensemble_exports_in_every_format(iris_search, tmp_path):
    """A functional ensemble (nested member models, Rescaling, Add) exports the same way."""
    study = iris_search.result.study
    kept = [t.number for t in study.trials if TrialRecord.read(t).model_file is not None]
    paths = [trial_checkpoint(study, n) for n in (kept * 2)[:2]]  # the same file twice if alone
    ensemble = average_model([load_model(p, compile=False) for p in paths], [0.75, 0.25])
    ensemble.save(tmp_path / "ensemble.keras")
    x_test = load_dataset("iris").x_test.astype("float32")
    expected = ensemble.predict(x_test, verbose=0)
    for fmt in ("onnx", "litert"):
        written = write_format(tmp_path / "ensemble.keras", tmp_path / fmt, fmt)
        assert_matches(predict_fresh(fmt, written, x_test, tmp_path), expected)
    # Checked in this process against Keras on probe inputs before it is moved into place.
    assert (
        write_format(tmp_path / "ensemble.keras", tmp_path, "saved_model") / "saved_model.pb"
    ).is_file()


@pytest.mark.slow  # 15-25 s: beyond the default suite's 15 minutes
def test_cli_export_each_format_and_a_trial(iris_search, tmp_path):
    """`automl export STUDY --format onnx --out m.onnx` writes that file; `--trial N`
    exports trial N's own model; an unknown format lists the valid ones."""
    study = iris_search.result.study
    done = run_cli(
        "export", iris_search.study_name, "--format", "onnx", "--out", tmp_path / "m.onnx",
        "--storage", iris_search.storage, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    load = "load it with onnxruntime.InferenceSession"
    assert done.stdout.strip() == f"wrote {tmp_path / 'm.onnx'} ({load})"
    x_test = load_dataset("iris").x_test.astype("float32")
    expected = iris_search.result.best_model.predict(x_test, verbose=0)
    assert_matches(predict_fresh("onnx", tmp_path / "m.onnx", x_test, tmp_path), expected)

    number = study.best_trial.number
    written = export_study(study, tmp_path / "t.keras", trial=number)
    here = load_model(TrialRecord.read(study.best_trial).model_file).predict(x_test, verbose=0)
    np.testing.assert_allclose(keras.models.load_model(written).predict(x_test, verbose=0), here)

    done = run_cli("export", "any", "--format", "tflite", "--out", "x", cwd=tmp_path)
    assert_usage_error(done, "--format must be one of keras, saved_model, onnx, litert")
    with pytest.raises(UsageError, match=r"out ends in \.keras \(the keras format's suffix\), "):
        export_study(study, tmp_path / "m.keras", format="onnx")
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    with pytest.raises(UsageError, match=r"out .*notes\.txt is a file; saved_model goes into a"):
        export_study(study, tmp_path / "notes.txt", format="saved_model")


def test_a_trial_that_is_not_complete_is_a_usage_error(tmp_path):
    study = optuna.create_study(study_name="s", storage=sqlite_url(tmp_path / "s.db"))
    study.tell(study.ask(), state=optuna.trial.TrialState.PRUNED)
    with pytest.raises(UsageError, match=r"trial must name a complete trial .* trial 0 is PRUNED"):
        export_study(study, tmp_path, trial=0)
    with pytest.raises(UsageError, match=r"trial 7 does not exist"):
        export_study(study, tmp_path, trial=7)


def _text_study(tmp_path: Path) -> tuple[str, Path]:
    """A real study on SQLite whose one complete trial saved a raw-strings model:
    TextVectorization (a string lookup) in front of a small classifier."""
    texts = np.array(["a wonderful film", "boring awful plot", "great fun", "dull"], dtype=object)
    vectorize = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=6)
    vectorize.adapt(texts)
    raw = keras.Input(shape=(), dtype="string", name="text")
    hidden = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(20, 4)(vectorize(raw)))
    model = keras.Model(raw, keras.layers.Dense(2, activation="softmax")(hidden))
    model.save(tmp_path / "text.keras")
    storage = sqlite_url(tmp_path / "text.db")
    study = optuna.create_study(study_name="texts", storage=storage, direction="maximize")
    trial = study.ask()
    trial.set_user_attr("model_path", str(tmp_path / "text.keras"))
    study.tell(trial, 0.5)
    return storage, tmp_path / "text.keras"


@pytest.mark.slow  # 20-50 s on a loaded day: beyond the default suite's 15 minutes
def test_a_text_model_is_refused_by_onnx_and_litert_and_leaves_nothing(tmp_path):
    """ONNX and LiteRT cannot hold TextVectorization: one line naming the layer and the
    formats that work, exit 2, and the target folder stays empty; SavedModel holds it and
    predicts raw strings in a fresh process."""
    storage, source = _text_study(tmp_path)
    out = tmp_path / "out"
    for fmt in ("onnx", "litert"):
        done = run_cli(
            "export", "texts", "--format", fmt, "--out", out, "--storage", storage, cwd=tmp_path
        )
        line = assert_usage_error(done, f"{fmt} cannot hold the preprocessing layer ")
        assert "(TextVectorization)" in line and "export it as keras, saved_model instead" in line
        assert not out.exists() or not any(out.iterdir())
    texts = np.array(["a wonderful film", "dull plot", ""], dtype=object)
    written = write_format(source, out, "saved_model")
    expected = keras.models.load_model(source).predict(texts, verbose=0)
    assert_matches(predict_fresh("saved_model", written, texts, tmp_path), expected)


def test_augmentation_inside_a_model_is_off_in_its_saved_model(tmp_path):
    """The image recipe trains with random flips and shifts inside the model: the
    SavedModel serves its inference call, where they are off (Keras' own `export` serves
    `__call__`, which runs them), and predicts what Keras predicts."""
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.RandomFlip("horizontal"),
            keras.layers.RandomTranslation(0.25, 0.25),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.save(tmp_path / "augmented.keras")
    pixels = np.random.default_rng(0).uniform(0, 255, (16, 8, 8, 3)).astype("float32")
    written = write_format(tmp_path / "augmented.keras", tmp_path / "out", "saved_model")
    expected = load_model(tmp_path / "augmented.keras").predict(pixels, verbose=0)
    assert_matches(predict_fresh("saved_model", written, pixels, tmp_path), expected)


def _table_model(tmp_path: Path, *, categories: bool) -> tuple[Path, dict[str, np.ndarray]]:
    """A model on raw table columns (the table encoder's preprocessing in front), and raw
    test rows as the exported formats take them: a dict of (n, 1) columns."""
    import pandas as pd
    from sklearn.datasets import load_wine

    from automl.data import load_data
    from automl.data._table import table_input

    frame = load_wine(as_frame=True).frame[["alcohol", "malic_acid", "magnesium", "target"]]
    frame.loc[[3, 20, 41], "magnesium"] = np.nan  # filled inside the model
    if categories:
        frame["level"] = pd.cut(frame["alcohol"], 3, labels=["low", "mid", "high"]).astype(str)
    frame.to_csv(tmp_path / "wine.csv", index=False)
    data = load_data(str(tmp_path / "wine.csv"), target="target")
    encoded = data.encode()
    net = keras.Sequential(
        [keras.Input(encoded.input_shape), keras.layers.Dense(3, activation="softmax")]
    )
    model = encoded.wrap(net)
    model.save(tmp_path / "table.keras")
    columns = table_input(data.x_test, model)  # as Keras takes them: one (n,) array each
    return tmp_path / "table.keras", {k: v.reshape(-1, 1) for k, v in columns.items()}


def test_a_numeric_table_round_trips_through_onnx_and_litert_as_named_columns(tmp_path):
    """Missing-value filling and normalization stay inside: ONNX and LiteRT take the raw
    columns by name (NaN included) and predict like the .keras model."""
    source, columns = _table_model(tmp_path, categories=False)
    columns["magnesium"][:2] = np.nan
    expected = load_model(source).predict(columns, verbose=0)
    for fmt in ("onnx", "litert"):
        written = write_format(source, tmp_path / fmt, fmt)
        assert_matches(predict_fresh(fmt, written, columns, tmp_path), expected)


@pytest.mark.slow  # 15-25 s: beyond the default suite's 15 minutes
def test_a_table_with_categories_is_refused_by_onnx_and_held_by_saved_model(tmp_path):
    """String columns go through a StringLookup: ONNX refuses it by name, nothing is
    written; the SavedModel takes the raw columns, strings included."""
    source, columns = _table_model(tmp_path, categories=True)
    with pytest.raises(UsageError, match=r"onnx cannot hold the preprocessing layer .*Lookup"):
        write_format(source, tmp_path / "out", "onnx")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert columns["level"].dtype == object
    written = write_format(source, tmp_path / "out", "saved_model")
    as_keras_takes = {k: v.reshape(-1) for k, v in columns.items()}  # strings: (n,) only
    expected = load_model(source).predict(as_keras_takes, verbose=0)
    assert_matches(predict_fresh("saved_model", written, columns, tmp_path), expected)


@keras.saving.register_keras_serializable(package="tests")
class CountTokens(keras.layers.Layer):
    """Counts each token id of a row with `keras.ops.scatter`, which sums the updates to
    one index (a bag of words, as the ngrams space builds it)."""

    def call(self, ids):
        ids = keras.ops.cast(ids, "int32")
        batch, steps = keras.ops.shape(ids)[0], keras.ops.shape(ids)[1]
        rows = keras.ops.broadcast_to(
            keras.ops.arange(batch, dtype="int32")[:, None], (batch, steps)
        )
        indices = keras.ops.stack(
            [keras.ops.reshape(rows, (-1,)), keras.ops.reshape(ids, (-1,))], 1
        )
        ones = keras.ops.ones((batch * steps,), dtype=self.compute_dtype)
        return keras.ops.scatter(indices, ones, (batch, 10))


def _bag_model(tmp_path: Path) -> Path:
    ids = keras.Input((12,), dtype="int32", name="ids")
    model = keras.Model(ids, keras.layers.Dense(2, activation="softmax")(CountTokens()(ids)))
    model.save(tmp_path / "bag.keras")
    return tmp_path / "bag.keras"


def test_repeated_tokens_count_in_onnx_as_in_keras(tmp_path):
    """A scatter that sums repeated indices (tf2onnx alone keeps only the last) predicts
    the same in ONNX Runtime as in Keras."""
    source = _bag_model(tmp_path)
    ids = np.random.default_rng(0).integers(0, 3, size=(6, 12)).astype("int32")  # repeats
    written = write_format(source, tmp_path / "out", "onnx")
    expected = load_model(source).predict(ids, verbose=0)
    assert_matches(predict_fresh("onnx", written, ids, tmp_path), expected)


def test_a_mistranslated_model_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    """Every export is run with its runtime on probe inputs before it is moved into place:
    without the scatter fix, ONNX predicts differently, and nothing is written."""
    import automl.formats

    source = _bag_model(tmp_path)
    monkeypatch.setattr(automl.formats, "_scatter_as_add", lambda graph: graph)
    with pytest.raises(UsageError, match=r"onnx predicts differently from the Keras model"):
        write_format(source, tmp_path / "out", "onnx")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_recurrent_model_goes_to_litert_one_row_at_a_time(tmp_path, caplog):
    """LSTMs convert to LiteRT's built-in ops only with static shapes: the file takes one
    row at a time, says so, and predicts like Keras row by row."""
    from optuna.trial import FixedTrial

    from automl.models import save_plain
    from automl.spaces import HyperParameters
    from search_spaces import rnn
    from tests._digits import digits_as, digits_spec

    x, _ = digits_as("sequence")
    point = rnn.starting_points(digits_spec("sequence"))[0]
    save_plain(
        rnn.build(HyperParameters(FixedTrial(point)), digits_spec("sequence")), tmp_path / "r.keras"
    )
    with caplog.at_level("WARNING", logger="automl"):
        written = write_format(tmp_path / "r.keras", tmp_path / "out", "litert")
    assert "takes one row at a time" in caplog.text
    expected = load_model(tmp_path / "r.keras").predict(x[:5], verbose=0)
    assert_matches(predict_fresh("litert", written, x[:5], tmp_path), expected)


def test_a_missing_converter_names_the_extra(tmp_path, monkeypatch):
    """Without tf2onnx, exporting to onnx is one line naming the extra to install."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tf2onnx" else real(name, *a)
    )
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.save(tmp_path / "plain.keras")
    with pytest.raises(
        UsageError, match=r"needs tf2onnx \(not installed here\): pip install 'automl\[export\]'"
    ):
        write_format(tmp_path / "plain.keras", tmp_path / "out", "onnx")
    assert not (tmp_path / "out").exists()


def test_cli_without_the_export_extra_says_how_to_get_it(iris_search, tmp_path):
    """`automl export --format onnx` where tf2onnx and onnxruntime cannot be imported (as
    after a base install): one line naming the extra, exit 2, nothing written."""
    code = textwrap.dedent(f"""
        import sys
        sys.modules.update(tf2onnx=None, onnxruntime=None)  # as if not installed
        from automl.cli import main
        sys.exit(main(["export", {iris_search.study_name!r}, "--format", "onnx",
                       "--out", "exported", "--storage", {iris_search.storage!r}]))
    """)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert_usage_error(done, "onnx needs tf2onnx and onnxruntime (not installed here): ")
    assert done.stderr.strip().endswith("pip install 'automl[export]'")
    assert not (tmp_path / "exported").exists()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["saved_model", "onnx", "litert"])
def test_image_models_take_raw_pixels_in_every_format(cifar_search, cifar_root, tmp_path, fmt):
    """The CIFAR-10 CNN (its Rescaling inside) exported, fed raw 0-255 test pixels (as
    float32, the dtype its input declares: ONNX and LiteRT do not cast)."""
    pixels = load_dataset("cifar10", data_dir=cifar_root).x_test.astype("float32")
    written = export_study(cifar_search.result.study, tmp_path, format=fmt)
    expected = cifar_search.result.best_model.predict(pixels, verbose=0)
    assert_matches(predict_fresh(fmt, written, pixels, tmp_path), expected)


@pytest.mark.slow
def test_a_real_text_search_exports_to_saved_model_and_is_refused_by_onnx(tmp_path):
    """`automl search reviews.csv --text-column text`, then `automl export --format onnx`:
    one line, exit 2, nothing written; `--format saved_model` predicts raw strings in a
    fresh process like best_model.keras."""
    from tests._texts import write_reviews

    storage = sqlite_url(tmp_path / "automl.db")
    done = run_cli(
        "search", write_reviews(tmp_path / "reviews.csv"), "--target", "label",
        "--text-column", "text", "--trials", "2", "--max-epochs", "2", "--storage", storage,
        "--tracking-uri", "none", "--out", tmp_path / "out", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    study = next(s.study_name for s in optuna.get_all_study_summaries(storage))
    target = tmp_path / "exported"
    refused = run_cli(
        "export", study, "--format", "onnx", "--out", target, "--storage", storage, cwd=tmp_path
    )
    assert_usage_error(refused, "onnx cannot hold the preprocessing layer vectorize")
    assert not target.exists()
    written = run_cli(
        "export", study, "--format", "saved_model", "--out", target, "--storage", storage,
        cwd=tmp_path,
    )  # fmt: skip
    assert written.returncode == 0, written.stderr[-3000:]
    texts = np.array(["a wonderful superb film", "boring awful plot", ""], dtype=object)
    expected = load_model(tmp_path / "out" / "best_model.keras").predict(texts, verbose=0)
    fresh = predict_fresh("saved_model", target / "best_model_saved_model", texts, tmp_path)
    assert_matches(fresh, expected)


@pytest.mark.slow
def test_a_real_table_search_exports_its_raw_columns(tmp_path):
    """`automl search wine.csv --target target` on numeric and string columns: the
    SavedModel takes the raw columns (strings through the StringLookup) and predicts like
    best_model.keras; ONNX refuses the lookup in one line and writes nothing."""
    import pandas as pd
    from sklearn.datasets import load_wine

    from automl.data import load_data
    from automl.data._table import table_input

    frame = load_wine(as_frame=True).frame
    frame["level"] = pd.cut(frame["alcohol"], 3, labels=["low", "mid", "high"]).astype(str)
    frame.to_csv(tmp_path / "wine.csv", index=False)
    storage = sqlite_url(tmp_path / "automl.db")
    done = run_cli(
        "search", tmp_path / "wine.csv", "--target", "target", "--trials", "2",
        "--max-epochs", "2", "--storage", storage, "--tracking-uri", "none",
        "--out", tmp_path / "out", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    study = next(s.study_name for s in optuna.get_all_study_summaries(storage))
    refused = run_cli(
        "export", study, "--format", "onnx", "--out", tmp_path / "x", "--storage", storage,
        cwd=tmp_path,
    )  # fmt: skip
    assert_usage_error(refused, "(StringLookup) of this model; export it as keras, saved_model")
    assert not (tmp_path / "x").exists()
    written = run_cli(
        "export", study, "--format", "saved_model", "--out", tmp_path / "x", "--storage",
        storage, cwd=tmp_path,
    )  # fmt: skip
    assert written.returncode == 0, written.stderr[-3000:]
    model = load_model(tmp_path / "out" / "best_model.keras")
    rows = table_input(load_data(str(tmp_path / "wine.csv"), target="target").x_test, model)
    expected = model.predict(rows, verbose=0)
    columns = {k: v.reshape(-1, 1) for k, v in rows.items()}
    fresh = predict_fresh(
        "saved_model", tmp_path / "x" / "best_model_saved_model", columns, tmp_path
    )
    assert_matches(fresh, expected)
