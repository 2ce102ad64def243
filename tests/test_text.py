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
from tests.conftest import mlflow_url, run_cli, sqlite_url


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
        mlflow_url(tmp_path / "mlflow.db"),
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


def test_a_mostly_empty_text_column_warns_once_with_its_share(tmp_path, caplog):
    """Issue #20: 70 of 100 texts empty: one warning with the share, asking about the
    column; the 30 texts left are what the search trains and scores on."""
    path = write_reviews(tmp_path / "reviews.csv", rows=100, empty_rows=70)
    with caplog.at_level(logging.WARNING, logger="automl"):
        data = _load(path)
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 30
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "dropped 70 rows whose 'text' text is empty" in warnings[0]
    assert "70.0 % of the rows; most of the column is empty" in warnings[0]


def test_a_split_with_no_word_in_any_text_is_refused(tmp_path):
    """Issue #20: a split whose every text holds no word ("!!!", "...") would train or be
    judged on padding alone; loading refuses it and names the split. Token ids too."""
    from automl.data import from_arrays
    from automl.data._split import split_dataset

    texts = np.array([f"good film {i}" for i in range(40)], dtype=object)
    labels = np.arange(40) % 2
    wordless = np.array(["!!!", "...", "  ?", "--"] * 2, dtype=object)
    with pytest.raises(UsageError, match=r"every text of the test split of t.csv \(8 rows\)"):
        split_dataset(
            "t", "text", ["a", "b"], (texts, labels), (wordless, labels[:8]), seed=0, source="t.csv"
        )
    with pytest.raises(UsageError, match="every text of the training split .* holds no word"):
        from_arrays(np.zeros((40, 8), dtype="int32"), labels, kind="text", name="ids")
    all_punctuation = tmp_path / "punctuation.csv"
    all_punctuation.write_text("text,label\n" + "".join(f"!!!,{i % 2}\n" for i in range(30)))
    with pytest.raises(UsageError, match="training split of .*punctuation.csv"):
        _load(all_punctuation)
