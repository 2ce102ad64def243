"""automl.data._table: reading tables, typing columns, the train-only encoder, the export.

Real data only: scikit-learn's wine set written to CSV/TSV/Parquet with a few derived
columns (text, bool, integer codes, a name with "/") and injected missing values.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from automl import UsageError
from automl.data._table import load_table, read_table, require_column, table_input
from tests.conftest import ROOT, cli_env

SUFFIXES = [".csv", ".tsv", ".tab", ".parquet", ".pq"]
MISSING_ROWS = [3, 20, 41, 77, 90, 101, 130, 160]


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    """Wine's 13 numeric columns and target, plus derived columns of every kind."""
    frame = load_wine(as_frame=True).frame
    frame["level"] = pd.cut(frame["alcohol"], 3, labels=["low", "mid", "high"]).astype("str")
    frame["code"] = np.arange(len(frame)) % 4  # an integer code: categorical
    frame["count"] = np.arange(len(frame))  # integers with many values: numeric
    frame["flag"] = frame["ash"] > 2.3
    frame["km/h"] = frame["hue"]  # Keras layer names cannot hold "/"
    frame.loc[MISSING_ROWS, "magnesium"] = np.nan
    frame.loc[MISSING_ROWS, "level"] = np.nan
    return frame


def write(frame: pd.DataFrame, path: Path) -> Path:
    """Write `frame` in the format its suffix names."""
    if path.suffix in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, sep="," if path.suffix == ".csv" else "\t", index=False)
    return path


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_read_table_reads_every_format_alike(tmp_path, wine, suffix):
    """Every format gives the same columns: text as text with NaN gaps, numbers as numbers."""
    frame = read_table(write(wine, tmp_path / f"wine{suffix}"))
    assert list(frame.columns) == list(wine.columns)
    assert pd.api.types.is_string_dtype(frame["level"])
    assert frame["level"].isna().sum() == len(MISSING_ROWS)
    assert frame["magnesium"].isna().sum() == len(MISSING_ROWS)
    assert pd.api.types.is_integer_dtype(frame["code"])
    np.testing.assert_allclose(frame["proline"], wine["proline"])


def test_read_table_does_not_guess_dates(tmp_path):
    path = tmp_path / "dates.csv"
    path.write_text("when,y\n2024-01-05,1\n2024-02-07,0\n")
    assert read_table(path)["when"].tolist() == ["2024-01-05", "2024-02-07"]


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("absent.csv", None, r"^no such file: .*absent\.csv; check the path\.$"),
        ("t.xlsx", "a,b\n1,2\n", r"unsupported suffix '\.xlsx'; .*\.csv, \.tsv, \.tab, \.parquet"),
        ("empty.csv", "", r"empty\.csv is empty; give a header line"),
        ("header.tsv", "a\tb\n", r"header\.tsv has no rows"),
        ("ragged.csv", "a,b\n1,2\n3,4,5\n", r"cannot read .* as CSV: .*Expected 2 fields"),
        ("bad.parquet", "not parquet", r"cannot read .*bad\.parquet as Parquet: .*valid Parquet"),
    ],
)
def test_read_table_errors_say_what_and_how(tmp_path, name, content, match):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError, match=match) as info:
        read_table(path)
    assert "\n" not in str(info.value)


def test_missing_column_lists_the_columns(tmp_path, wine):
    path = write(wine, tmp_path / "wine.csv")
    with pytest.raises(UsageError, match=r"no column 'Target'; did you mean 'target'\? .*alcohol"):
        load_table(path, target="Target")
    with pytest.raises(UsageError, match=r"no column 'id'; its columns are: alcohol, malic_acid"):
        require_column(wine, "id", path)
    with pytest.raises(UsageError, match=r"no column 'nope'"):
        load_table(path, target="target", exclude=("nope",))


@pytest.mark.parametrize(("suffix", "where"), [(".csv", "line 17"), (".parquet", "row 16")])
def test_numeric_column_with_garbage_names_the_cell(tmp_path, wine, suffix, where):
    frame = wine.copy()
    frame["magnesium"] = frame["magnesium"].astype("str")
    frame.loc[15, "magnesium"] = "abc"
    path = write(frame, tmp_path / f"wine{suffix}")
    match = rf"^column 'magnesium' is numeric but {where} holds 'abc'; fix or blank that cell\.$"
    with pytest.raises(UsageError, match=match):
        load_table(path, target="target")


def test_empty_column_and_no_features_are_errors(tmp_path, wine):
    path = write(wine.assign(notes=np.nan), tmp_path / "wine.csv")
    with pytest.raises(UsageError, match=r"column 'notes' is empty in every row; drop it"):
        load_table(path, target="target")
    others = tuple(c for c in wine.columns if c != "target") + ("notes",)
    with pytest.raises(UsageError, match=r"no feature columns besides the target 'target'"):
        load_table(path, target="target", exclude=others)


def test_columns_are_typed_and_splits_stay_raw(tmp_path, wine):
    frame = wine.copy()
    # A nullable integer column with a gap (Parquet keeps pandas' Int64) must be numeric.
    frame["rating"] = pd.array([None, *range(1, len(frame))], dtype="Int64")
    data = load_table(write(frame, tmp_path / "wine.parquet"), target="target", exclude=("count",))
    kinds = data.encoder.kinds
    assert kinds["level"] == kinds["flag"] == "string"
    assert kinds["code"] == "integer"
    assert kinds["magnesium"] == kinds["km/h"] == kinds["rating"] == "numeric"
    assert "count" not in kinds and "target" not in kinds
    assert (data.kind, data.task, data.class_names) == ("table", "classification", ["0", "1", "2"])
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == len(frame)
    assert isinstance(data.x_train, pd.DataFrame)
    assert data.x_train["level"].isna().any()  # raw: NaN, not a filled token
    assert set(data.x_train["flag"].dropna()) == {"True", "False"}
    assert data.source.endswith("wine.parquet") and data.name == "wine"


def test_encoder_learns_from_the_training_split_only(tmp_path, wine):
    data = load_table(write(wine, tmp_path / "wine.csv"), target="target", seed=1)
    encoded = data.encode()
    assert data.encode() is encoded  # computed once
    assert encoded.kind == "vector" and encoded.x_train.dtype == np.float32
    assert encoded.x_val.shape == (len(data.x_val), encoded.x_train.shape[1])

    numeric = [c for c, k in data.encoder.kinds.items() if k == "numeric"]
    normalize = data.encoder.preprocessor().get_layer("automl_normalize")
    mean = np.asarray(normalize.mean).ravel()
    i = numeric.index("magnesium")
    train_mean = data.x_train["magnesium"].mean()  # pandas skips NaN
    assert mean[i] == pytest.approx(train_mean, rel=1e-6)
    assert mean[i] != pytest.approx(wine["magnesium"].mean(), rel=1e-6)
    # Only magnesium had gaps, so one indicator column follows the numeric ones.
    assert data.encoder.stats_["indicate"] == [c == "magnesium" for c in numeric]
    assert len(mean) == len(numeric) + 1
    # Standardized with training statistics: training features have mean 0.
    np.testing.assert_allclose(encoded.x_train[:, : len(mean)].mean(axis=0), 0, atol=1e-4)
    counts = data.x_train["level"].fillna("").value_counts()
    assert data.encoder.stats_["vocabulary"]["level"] == list(counts.index)
    assert data.encoder.stats_["vocabulary"]["code"] == sorted(
        data.x_train["code"].unique(), key=lambda v: (-(data.x_train["code"] == v).sum(), v)
    )


def test_wrapped_model_predicts_raw_columns_after_reload(tmp_path, wine):
    import keras

    keras.utils.set_random_seed(0)
    data = load_table(write(wine, tmp_path / "wine.tsv"), target="target")
    encoded = data.encode()
    model = keras.Sequential(
        [
            keras.Input(encoded.input_shape),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(encoded.x_train, data.y_train, epochs=2, batch_size=32, verbose=0)
    wrapped = encoded.wrap(model)
    # The exported model agrees with what training saw.
    np.testing.assert_allclose(
        wrapped.predict(table_input(data.x_val, wrapped), verbose=0),
        model.predict(encoded.x_val, verbose=0),
        atol=1e-6,
    )

    rows = data.x_test.iloc[:6].copy()
    rows.iloc[0, rows.columns.get_loc("magnesium")] = np.nan
    rows.iloc[1, rows.columns.get_loc("level")] = None
    rows.iloc[2, rows.columns.get_loc("level")] = ""
    rows.iloc[3, rows.columns.get_loc("level")] = "extreme"  # unseen: the OOV slot
    rows.iloc[4, rows.columns.get_loc("code")] = 99  # unseen integer code
    rows.iloc[5, rows.columns.get_loc("km/h")] = np.nan  # no gaps in training: mean-filled
    raw = table_input(rows)
    assert raw["level"].dtype == object and raw["level"][1] == raw["level"][2] == ""
    # One-hot blocks follow the numeric ones, in column order, OOV slot first.
    vocabulary = data.encoder.stats_["vocabulary"]
    level = len(data.encoder.stats_["mean"])
    code = level + 1 + len(vocabulary["level"])
    features = data.encoder.transform(rows)
    missing_slot = level + 1 + vocabulary["level"].index("")
    assert features[1, missing_slot] == features[2, missing_slot] == 1  # None and "" alike
    assert features[3, level] == 1 and features[4, code] == 1  # unseen values: OOV
    expected = wrapped.predict(raw, verbose=0)
    assert np.isfinite(expected).all()

    path = tmp_path / "model.keras"
    wrapped.save(path)
    (tmp_path / "raw.pkl").write_bytes(pickle.dumps(raw))
    script = textwrap.dedent(
        f"""
        import pickle, numpy as np, keras
        import automl.data.layers  # registers FillMissing
        model = keras.models.load_model({str(path)!r}, safe_mode=True)
        raw = pickle.loads(open({str(tmp_path / "raw.pkl")!r}, "rb").read())
        np.save({str(tmp_path / "out.npy")!r}, model.predict(raw, verbose=0))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-6)
