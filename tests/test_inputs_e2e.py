"""One end-to-end check per input kind: `automl search <input>` on the command line, then
the exported model predicting raw input (columns, pixels of another size, arrays, word
ids) in a fresh process. Text tables have theirs in test_text.py, built-ins in
test_cli.py and test_export.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.datasets import load_digits, load_wine

from tests._fresh import assert_fresh_predictions_match
from tests.conftest import cli_env, mlflow_url, run_cli, sqlite_url

pytestmark = pytest.mark.slow


def _search(dataset: Path | str, tmp_path: Path, *extra: str, env=None) -> dict:
    """Run a 2-trial search with files under tmp_path; return summary.json."""
    done = run_cli(
        "search",
        dataset,
        "--trials",
        "2",
        "--storage",
        sqlite_url(tmp_path / "automl.db"),
        "--tracking-uri",
        mlflow_url(tmp_path / "mlflow.db"),
        "--out",
        tmp_path / "out",
        *extra,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["trials"]["complete"] >= 1
    return summary


def test_csv_table_to_a_model_that_takes_raw_columns(tmp_path):
    """Wine with a text column, an integer code and gaps; the model takes a dict of raw
    columns with missing values and an unseen category."""
    frame = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    frame["level"] = pd.cut(frame["alcohol"], 3, labels=["low", "mid", "high"]).astype("str")
    frame["code"] = np.arange(len(frame)) % 3
    frame.loc[[2, 30, 95], "magnesium"] = np.nan
    frame.loc[[5, 60], "level"] = np.nan
    frame.to_csv(tmp_path / "wine.csv", index=False)

    # 20 epochs: auto's first trial is tabular's starting point (AdamW at 1e-3 on 107
    # rows, 2 steps an epoch), which reaches 0.62 validation accuracy after 8 and 1.0
    # after 20.
    summary = _search(tmp_path / "wine.csv", tmp_path, "--target", "cultivar", "--max-epochs", "20")
    assert summary["study"] == "wine-auto" and summary["task"] == "classification"
    # 0.972 on 36 test rows here (the largest class is 0.40): 0.75 allows 8 more misses.
    assert summary["test"]["metrics"]["accuracy"] > 0.75

    # Raw columns as a user passes them: NaN for a missing number, "" for a missing text
    # (Keras feeds string inputs only from object arrays of str), an unseen category.
    rows = frame.drop(columns="cultivar").head(3)
    columns = {  # None becomes NaN in a float array
        c: [None if pd.isna(v) else v for v in rows[c]] for c in rows.columns if c != "level"
    }
    columns["magnesium"][0] = None
    make_input = (
        f"{{**{{k: np.array(v, dtype=float) for k, v in {columns!r}.items()}}, "
        "'level': np.array(['mid', '', 'never-seen'], dtype=object)}"
    )
    predictions = assert_fresh_predictions_match(
        tmp_path / "out" / "best_model.keras", make_input, tmp_path
    )
    assert predictions.shape == (3, 3)
    assert np.allclose(np.sum(predictions, axis=1), 1, atol=1e-4)


def test_image_folder_of_mixed_sizes_to_a_model_that_takes_any_size(cifar_root, tmp_path):
    """path/<class>/*.jpg with one image of another size: images are resized for training
    and the exported model resizes raw pixels of any size itself."""
    folder = tmp_path / "animals"
    for name in ("cat", "dog", "frog"):
        (folder / name).mkdir(parents=True)
        for path in sorted((cifar_root / "cifar10" / "train" / name).glob("*.jpg"))[:40]:
            shutil.copy(path, folder / name / path.name)
    Image.open(next((folder / "cat").glob("*.jpg"))).resize((48, 48)).save(folder / "cat" / "x.png")

    env = cli_env(AUTOML_CACHE_DIR=str(tmp_path / "cache"))
    summary = _search(folder, tmp_path, "--space", "cnn", "--max-epochs", "1", env=env)
    assert summary["study"] == "animals-cnn" and summary["dataset"] == str(folder)
    pixels = np.random.default_rng(0).integers(0, 256, (2, 48, 40, 3)).tolist()
    predictions = assert_fresh_predictions_match(
        tmp_path / "out" / "best_model.keras", f"np.array({pixels}, dtype='uint8')", tmp_path
    )
    assert predictions.shape == (2, 3)


def test_npz_arrays_with_their_own_test_split(tmp_path):
    digits = load_digits()
    x, y = digits.data.astype("float32"), digits.target
    np.savez(
        tmp_path / "digits.npz",
        x_train=x[:1400],
        y_train=y[:1400],
        x_test=x[1400:],
        y_test=y[1400:],
    )
    summary = _search(tmp_path / "digits.npz", tmp_path, "--space", "mlp", "--max-epochs", "3")
    assert summary["study"] == "digits-mlp"
    # 0.902 on 397 test rows here (chance 0.10): 0.80 leaves room for noise.
    assert summary["test"]["metrics"]["accuracy"] > 0.80
    # Raw features of the whole test split: the fresh process scores the test accuracy
    # that the search reported.
    np.save(tmp_path / "x_test.npy", x[1400:])
    make_input = f"np.load({str(tmp_path / 'x_test.npy')!r})"
    predictions = assert_fresh_predictions_match(
        tmp_path / "out" / "best_model.keras", make_input, tmp_path
    )
    assert predictions.shape == (len(x) - 1400, 10)
    accuracy = float(np.mean(predictions.argmax(axis=1) == y[1400:]))
    assert accuracy == pytest.approx(summary["test"]["metrics"]["accuracy"])


def test_imdb_offline_copy_to_a_model_that_takes_word_ids(tmp_path):
    """`automl search imdb --data-dir DIR` reads Keras' own imdb.npz file from DIR."""
    rng = np.random.default_rng(0)
    labels = np.arange(120) % 2

    def reviews() -> np.ndarray:
        texts = np.empty(len(labels), dtype=object)
        for i, label in enumerate(labels):  # word 7 or 8 carries the label
            words = rng.integers(10, 5000, int(rng.integers(20, 300))).tolist()
            texts[i] = [7 + int(label)] + words
        return texts

    (tmp_path / "data").mkdir()
    np.savez(
        tmp_path / "data" / "imdb.npz",
        x_train=reviews(),
        y_train=labels,
        x_test=reviews(),
        y_test=labels,
    )
    summary = _search(
        "imdb", tmp_path, "--data-dir", tmp_path / "data", "--space", "rnn", "--max-epochs", "1"
    )
    assert summary["dataset"] == "imdb" and summary["task"] == "classification"
    ids = np.zeros((2, 256), dtype="int32")
    ids[:, :3] = [[1, 10, 11], [1, 12, 13]]
    predictions = assert_fresh_predictions_match(
        tmp_path / "out" / "best_model.keras",
        f"np.array({ids.tolist()}, dtype='int32')",
        tmp_path,
    )
    assert predictions.shape == (2, 2)
