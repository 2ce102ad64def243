"""automl.model_card: the `MODEL.md` written beside `best_model.keras`, from real tiny
searches (a numeric table, a mixed table, texts) and a tiny image model. Every load
snippet the card shows is run as written, in the output folder, after exporting the
formats it offers, and must predict what the Keras model predicts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

import automl
from automl.data import Dataset, from_arrays, load_data
from automl.formats import ATOL, RTOL, write_format
from automl.model_card import CARD_NAME, NOT_MEASURED, model_card, write_model_card
from tests._texts import write_reviews
from tests.conftest import sqlite_url

TITLES = {"keras": "Keras", "saved_model": "SavedModel", "onnx": "ONNX", "litert": "LiteRT"}


def search_and_card(folder: Path, data: Dataset, **options: Any) -> tuple[Path, str, Any]:
    """A real one-trial search on `data`, then the card written from its summary."""
    out = folder / "out"
    result = automl.search(
        data,
        trials=1,
        max_epochs=2,
        storage=sqlite_url(folder / "automl.db"),
        tracking_uri="none",
        out=out,
        **options,
    )
    path = write_model_card(out, result.summary, result.best_model, data)
    assert path == out / CARD_NAME
    assert not [p.name for p in out.iterdir() if "partial" in p.name]
    return out, path.read_text(), result


def snippets(card: str) -> tuple[str, dict[str, str]]:
    """The card's input snippet and each offered format's load snippet."""
    code = re.compile(r"```python\n(.*?)```", re.S)
    head, _, loading = card.partition("## Load it")
    (inputs,) = code.findall(head)
    blocks = re.findall(r"\*\*(\w+)\*\* \(`[^`]+`\):\n\n```python\n(.*?)```", loading, re.S)
    by_title = {v: k for k, v in TITLES.items()}
    return inputs, {by_title[title]: body for title, body in blocks}


def run_snippets(card: str, out: Path, monkeypatch) -> dict[str, np.ndarray]:
    """Export each offered format into `out`, run the input snippet and each load snippet
    there as written, and check each prediction against `best_model.keras`'s on the same
    `x`. (The search's in-memory table model predicts on `(n,)` columns only; the saved
    one takes `(n, 1)` too.)"""
    inputs, loaders = snippets(card)
    model = automl.load_model(out / "best_model.keras")
    monkeypatch.chdir(out)
    for fmt in loaders:
        if fmt != "keras":
            write_format(out / "best_model.keras", out, fmt)
    found = {}
    for fmt, body in loaders.items():
        scope: dict[str, Any] = {}
        exec(inputs, scope)  # noqa: S102 - the card's own snippets, as a user runs them
        exec(body, scope)  # noqa: S102
        expected = model.predict(scope["x"], verbose=0)
        np.testing.assert_allclose(np.asarray(scope["p"]), expected, atol=ATOL, rtol=RTOL)
        found[fmt] = scope["p"]
    return found


def section(card: str, title: str) -> str:
    return card.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


@pytest.mark.slow  # keeps the default suite under 15 minutes on 2 cores
def test_a_numeric_table_card_from_a_real_search(tmp_path, monkeypatch):
    """Wine as a CSV: the card names the data, the real summary's metrics, the size of
    best_model.keras, a measured latency, every column with its dtype, and load snippets
    for all four formats that run as written (the `/` of a column name is `_` in the
    ONNX and LiteRT feeds)."""
    frame = load_wine(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "cultivar_a", 1: "cultivar_b", 2: "cultivar_c"})
    frame.to_csv(tmp_path / "wine.csv", index=False)
    data = load_data(str(tmp_path / "wine.csv"), target="target")
    out, card, result = search_and_card(tmp_path, data)
    summary = result.summary

    assert len(card.splitlines()) < 80
    assert card.startswith(f"# Model card: {summary['study']}\n")
    data_part = section(card, "Data")
    assert f"{len(data.x_train):,} train, {len(data.x_val):,} validation" in data_part
    assert "`cultivar_a`, `cultivar_b`, `cultivar_c`" in data_part
    metrics = section(card, "Metrics")
    assert "validation `val_accuracy` (what the trials were ranked by): " in metrics
    assert f"{summary['best']['val_metric']:.4f}, trial {summary['best']['trial']}" in metrics
    for name, value in summary["test"]["metrics"].items():
        assert f"{name} {value:.4f}" in metrics
    assert summary["baseline"]["line"] in metrics
    costs = section(card, "Size and speed")
    assert f"parameters: {result.best_model.count_params():,}" in costs
    assert f"{(out / 'best_model.keras').stat().st_size / 1e6:.3f} MB" in costs
    assert re.search(r"latency: [\d.]+ ms per example", costs)

    put = section(card, "Input")
    assert "A dict of 13 raw columns, one `(n,)` array each" in put
    assert "`alcohol` float32" in put and "`od280/od315_of_diluted_wines` float32" in put
    assert "float32 `(n, 3)`, class probabilities" in put
    first = data.x_test.iloc[0]
    assert f'"alcohol": {first["alcohol"]:.6g}' in put
    assert '{"od280/od315_of_diluted_wines": "od280_od315_of_diluted_wines"}' in card

    loading = section(card, "Load it")
    assert f"automl export {summary['study']} --format FORMAT --out ." in loading
    assert "cannot hold" not in loading
    predictions = run_snippets(card, out, monkeypatch)
    assert sorted(predictions) == ["keras", "litert", "onnx", "saved_model"]


@pytest.mark.slow  # 20-50 s on a loaded day: beyond the default suite's 15 minutes
def test_a_mixed_table_card_names_dtypes_and_the_formats_that_cannot_hold_it(tmp_path, monkeypatch):
    """Text and integer-code columns: the example row says each column's dtype, ONNX and
    LiteRT are named as unable to hold the lookups, Keras and SavedModel run as shown."""
    rng = np.random.default_rng(0)
    n = 150
    size = rng.uniform(0, 10, n)
    colour = rng.choice(["red", "green", "blue"], n)
    grade = rng.integers(1, 4, n)
    label = np.where((size > 5) ^ (colour == "red"), "yes", "no")
    frame = pd.DataFrame({"size": size, "colour": colour, "grade": grade, "label": label})
    frame.to_csv(tmp_path / "mixed.csv", index=False)
    data = load_data(str(tmp_path / "mixed.csv"), target="label")
    out, card, result = search_and_card(tmp_path, data)

    put = section(card, "Input")
    assert "`size` float32, `colour` string, `grade` int64" in put
    assert 'dtypes = {"size": "float32", "colour": object, "grade": "int64"}' in put
    assert f'"colour": "{data.x_test.iloc[0]["colour"]}"' in put
    loading = section(card, "Load it")
    assert re.search(r"\*\*ONNX\*\*: cannot hold this model's automl_lookup_\d \(\w+Lookup\)", card)
    assert "**LiteRT**: cannot hold" in loading
    assert sorted(run_snippets(card, out, monkeypatch)) == [
        "keras",
        "saved_model",
    ]


@pytest.mark.slow  # 20-50 s on a loaded day: beyond the default suite's 15 minutes
def test_a_text_card_takes_raw_strings(tmp_path, monkeypatch):
    """A text search (ngrams): the input is a string tensor fed as an object array of the
    first test text; ONNX and LiteRT cannot hold its TextVectorization."""
    data = load_data(
        str(write_reviews(tmp_path / "reviews.csv", rows=120)), target="label", text_column="text"
    )
    out, card, result = search_and_card(tmp_path, data, space="ngrams")

    put = section(card, "Input")
    assert "`text`: string `(n,)`, raw texts (an object array of `str`)" in put
    assert f'x = np.array(["{data.x_test[0][:80]}"], dtype=object)' in put
    assert "**ONNX**: cannot hold this model's vectorize (TextVectorization)" in card
    assert "**LiteRT**: cannot hold" in card
    assert sorted(run_snippets(card, out, monkeypatch)) == [
        "keras",
        "saved_model",
    ]


def tiny_image_model() -> keras.Model:
    raw = keras.Input((8, 8, 3), name="raw_input")
    hidden = keras.layers.Rescaling(1.0 / 255)(raw)
    hidden = keras.layers.Conv2D(4, 3, activation="relu")(hidden)
    hidden = keras.layers.GlobalAveragePooling2D()(hidden)
    return keras.Model(raw, keras.layers.Dense(2, activation="softmax")(hidden))


def image_summary(**best: Any) -> dict[str, Any]:
    return {
        "study": "pixels-cnn",
        "dataset": "pixels",
        "task": "classification",
        "space": "cnn",
        "best": {"trial": 3, "params": {}, "val_metric": 0.5, "metric": "val_accuracy", **best},
        "test": {"metrics": {}},
        "trials": {"complete": 4, "pruned": 1, "failed": 0, "running": 0},
        "final": {"description": "trial 3", "members": [{"trial": 3, "weight": 1.0}]},
    }


def test_an_image_card_takes_pixels_and_loads_in_every_format(tmp_path, monkeypatch):
    """A tiny image model: uint8 pixels of the data's shape, fed as float32 zeros in the
    example; plain Keras in safe mode (no automl layers); all four formats run as shown;
    facts the summary lacks read "not measured", the search's latency is quoted."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 8, 8, 3), dtype="uint8")
    data = from_arrays(x, np.arange(40) % 2, name="pixels")
    model = tiny_image_model()
    out = tmp_path / "out"
    out.mkdir()
    model.save(out / "best_model.keras")
    card = write_model_card(out, image_summary(latency_ms=0.123), model, data).read_text()

    assert "`best_model.keras` is trial 3 of study `pixels-cnn` (space `cnn`)" in card
    assert "- test: not scored\n" in card  # the summary has no test metrics
    assert "- validation `val_accuracy` (what the trials were ranked by): 0.5000, trial 3" in card
    assert "trial 3's network alone (no preprocessing, measured in the search): 0.12 ms" in card
    put = section(card, "Input")
    assert "`raw_input`: float32 `(n, 8, 8, 3)`, RGB pixels 0-255, not rescaled" in put
    assert 'x = np.zeros((1, 8, 8, 3), dtype="float32")' in put
    assert 'keras.saving.load_model("best_model.keras", safe_mode=True)' in card
    assert "import automl" not in card
    predictions = run_snippets(card, out, monkeypatch)
    assert sorted(predictions) == ["keras", "litert", "onnx", "saved_model"]


def test_without_the_saved_file_size_reads_not_measured(tmp_path):
    """No `best_model.keras` to measure: the size says so, and every format is shown."""
    x = np.random.default_rng(0).integers(0, 256, (40, 8, 8, 3), dtype="uint8")
    data = from_arrays(x, np.arange(40) % 2, name="pixels")
    card = model_card(image_summary(), tiny_image_model(), data, model_file=None)
    assert f"- `best_model.keras`: {NOT_MEASURED}" in card
    assert "(no preprocessing" not in card
    assert card.count("```python") == 5


def test_the_card_quotes_the_validation_score_of_the_option_exported():
    """With TTA chosen on top of the best model, the card gives that option's validation
    score, not the best model's alone nor an ensemble's it did not export."""
    x = np.random.default_rng(0).integers(0, 256, (40, 8, 8, 3), dtype="uint8")
    data = from_arrays(x, np.arange(40) % 2, name="pixels")
    summary = image_summary()
    summary["final"] = {
        "description": "trial 3 with flip and shift test-time augmentation",
        "members": [{"trial": 3, "weight": 1.0}],
        "metric": "accuracy",
        "chosen": "flip_shift_tta",
        "val_scores": {"best": 0.5, "flip_tta": 0.55, "flip_shift_tta": 0.6},
    }
    card = model_card(summary, tiny_image_model(), data, model_file=None)
    assert (
        "- validation accuracy of the final model (trial 3 with flip and shift "
        "test-time augmentation): 0.6000" in card
    )


def test_a_regression_card_says_what_it_predicts(tmp_path, monkeypatch):
    """Vectors and a numeric target: the first test row as the example, one predicted
    value per row, no class list; the snippets run as shown."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype("float32")
    data = from_arrays(x, x.sum(axis=1) + 0.5, name="sums", task="regression")
    raw = keras.Input((4,), name="raw_input")
    model = keras.Model(raw, keras.layers.Dense(1)(raw))
    out = tmp_path / "out"
    out.mkdir()
    model.save(out / "best_model.keras")
    summary = {**image_summary(), "study": "sums-mlp", "task": "regression"}
    card = write_model_card(out, summary, model, data).read_text()

    assert "- `sums`: vector data, regression" in card and "classes" not in card
    assert "Output `output_0`: float32 `(n, 1)`, the predicted value." in card
    row = ", ".join(f"{v:.6g}" for v in data.x_test[0])
    assert f'x = np.array([[{row}]], dtype="float32")  # the first test row' in card
    assert sorted(run_snippets(card, out, monkeypatch)) == sorted(TITLES)
