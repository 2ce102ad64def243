"""Text tables: loading, the TextVectorization encoder and its search dimensions, and a
search from the CLI whose exported model predicts raw strings in a fresh process."""

from __future__ import annotations

import json
import logging

import numpy as np
import optuna
import pytest

from automl import UsageError
from automl.data import load_data
from automl.data._text import TextEncoder
from automl.spaces import HyperParameters
from tests._fresh import assert_fresh_predictions_match
from tests._texts import write_reviews
from tests.conftest import run_cli, sqlite_url


def _load(path, **options):
    return load_data(str(path), target="label", text_column="text", **options)


def test_text_table_loads_raw_strings_with_stratified_splits(tmp_path):
    data = _load(write_reviews(tmp_path / "reviews.csv"))
    assert data.kind == "text" and data.task == "classification"
    assert data.class_names == ["neg", "pos"]
    assert data.x_train.dtype == object and isinstance(data.x_train[0], str)
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 300
    # Stratified: both classes in every split, in similar proportions.
    shares = [np.mean(part) for part in (data.y_train, data.y_val, data.y_test)]
    assert max(shares) - min(shares) < 0.1


def test_empty_texts_are_dropped_with_one_warning(tmp_path, caplog):
    path = write_reviews(tmp_path / "reviews.csv", empty_rows=3)
    with caplog.at_level(logging.WARNING, logger="automl"):
        data = _load(path)
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 297
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "dropped 3 rows whose 'text' text is empty (first at line 2" in warnings[0]


def test_text_errors_are_one_line(tmp_path):
    all_empty = write_reviews(tmp_path / "empty.csv", rows=20, empty_rows=20)
    with pytest.raises(UsageError, match="holds no text in any row"):
        _load(all_empty)
    reviews = write_reviews(tmp_path / "reviews.csv")
    with pytest.raises(UsageError, match="'body'.*text, label"):
        load_data(str(reviews), target="label", text_column="body")
    with pytest.raises(UsageError, match="'sentiment'.*text, label"):
        load_data(str(reviews), target="sentiment", text_column="text")


def test_vocabulary_comes_from_the_training_split_only(tmp_path):
    data = _load(write_reviews(tmp_path / "reviews.csv"))
    held_out = np.concatenate([data.x_val, data.x_test])
    marker = "zyxwordonlyinvalidation"
    held_out[0] = f"{held_out[0]} {marker}"
    encoder = TextEncoder(data.x_train)
    assert marker not in encoder.vocabulary
    assert "wonderful" in encoder.vocabulary and "" not in encoder.vocabulary


def test_vocabulary_size_and_length_are_search_dimensions(tmp_path):
    data = _load(write_reviews(tmp_path / "reviews.csv"))
    encoder = data.encoder
    # 30 distinct words + padding + OOV: one vocabulary choice; texts are <= 42 words long.
    assert encoder.vocab_choices == [32]
    assert encoder.length_choices == [32, 64]
    default = data.encode(None)
    assert default.kind == "text" and default.vocab_size == 32
    assert default.x_train.shape == (len(data.x_train), 64) and default.x_train.dtype == np.int32

    trial = optuna.trial.FixedTrial({"text.vocab_size": 32, "text.sequence_length": 32})
    encoded = data.encode(HyperParameters(trial))
    assert encoded.x_train.shape == (len(data.x_train), 32)
    assert encoded.x_val.shape == (len(data.x_val), 32)
    assert encoded.x_train.min() >= 0 and encoded.x_train.max() < 32
    # Right-padded (cuDNN's RNN kernels need it): zeros only after the last token.
    for row in encoded.x_train[:50]:
        tokens = np.flatnonzero(row)
        assert tokens.size and tokens[-1] == tokens.size - 1
    again = data.encode(HyperParameters(trial))
    assert again is encoded  # cached per choice, never vectorized twice


@pytest.mark.slow
def test_cli_text_search_exports_a_model_that_takes_raw_strings(tmp_path):
    """`automl search reviews.csv --target label --text-column text` end to end; a space
    config narrows the sequence length; the exported model predicts raw strings in a
    fresh process."""
    reviews = write_reviews(tmp_path / "reviews.csv", empty_rows=2)
    (tmp_path / "rnn.toml").write_text('space = "rnn"\n[params]\n"text.sequence_length" = 32\n')
    done = run_cli(
        "search",
        reviews,
        "--target",
        "label",
        "--text-column",
        "text",
        "--space",
        "rnn.toml",
        "--trials",
        "2",
        "--max-epochs",
        "2",
        "--storage",
        sqlite_url(tmp_path / "automl.db"),
        "--tracking-uri",
        sqlite_url(tmp_path / "mlflow.db"),
        "--out",
        tmp_path / "out",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "dropped 2 rows" in done.stdout + done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["study"] == "reviews-rnn" and summary["task"] == "classification"
    assert "text.vocab_size" in summary["best"]["params"]  # sampled
    study = optuna.load_study(study_name="reviews-rnn", storage=sqlite_url(tmp_path / "automl.db"))
    assert study.best_trial.user_attrs["fixed_text.sequence_length"] == 32  # fixed by the config
    assert {"accuracy", "f1_macro", "auc"} <= set(summary["test"]["metrics"])
    predictions = assert_fresh_predictions_match(
        tmp_path / "out" / "best_model.keras",
        "np.array(['a wonderful superb film', 'boring awful plot', ''], dtype=object)",
        tmp_path,
    )
    assert predictions.shape == (3, 2)
    assert np.allclose(np.sum(predictions, axis=1), 1, atol=1e-4)
