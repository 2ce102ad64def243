"""Tables (CSV, TSV, Parquet) as a `Dataset`, and the encoder that turns rows into vectors.

Column typing (`column_kinds`), decided on the whole table:

- bool, text, category and any other non-numeric column -> "string": one-hot over the
  training split's most frequent values (Keras `StringLookup`);
- integer columns with at most `MAX_INTEGER_CATEGORIES` distinct values -> "integer":
  one-hot the same way (`IntegerLookup`);
- other numbers -> "numeric": NaN filled with the training mean, plus a missing-value
  indicator, then standardized (`Normalization`).

The splits stay raw DataFrames; `TableEncoder` learns its statistics from the training
split only and puts the same preprocessing in front of the exported model. Loading the
file and typing its columns live here; the encoder is `automl.data._table_encoder`, and
the layer Keras lacks is in `automl.data.layers`.
"""

from __future__ import annotations

import csv
import difflib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from automl._errors import UsageError
from automl.data import TABLE_SUFFIXES
from automl.data._dataset import Dataset

if TYPE_CHECKING:
    import keras


logger = logging.getLogger("automl")

# Separator of the text formats; the other TABLE_SUFFIXES are Parquet.
_SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
MAX_CATEGORIES = 50  # most frequent training values one-hot encoded; the rest share the OOV slot
MAX_INTEGER_CATEGORIES = 10  # integer columns with this few values are codes, not quantities
NUMERIC_SHARE = 0.9  # a text column this numeric is a numeric column with a typo in it
# How a missing category reaches the model: `predict` cannot take None or NaN in a string
# tensor, so missing text is "" in the inputs and "" is a category of its own.
MISSING = ""
_INPUT_DTYPES = {"numeric": "float32", "integer": "int64", "string": "string"}


def read_table(path: Path) -> pd.DataFrame:
    """Read a `.csv`, `.tsv`/`.tab` or `.parquet`/`.pq` file.

    Text stays text (missing cells are NaN) and nothing is parsed as a date.

    Raises:
        UsageError: If the file is missing, has another suffix, or cannot be read as a
            table with a header and at least one row.
    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f"no such file: {path}; check the path.")
    if path.is_dir():
        raise UsageError(f"{path} is a folder; pass a table file ({', '.join(TABLE_SUFFIXES)}).")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise UsageError(
            f"cannot read {path}: unsupported suffix {path.suffix!r}; save the table as one of "
            f"{', '.join(TABLE_SUFFIXES)}."
        )
    sep = _SEPARATORS.get(suffix)
    form = "Parquet" if sep is None else suffix[1:].upper()
    try:
        if sep is None:
            frame = pd.read_parquet(path, engine="pyarrow")
        else:
            # low_memory=False: type each column from all its rows, not chunk by chunk.
            frame = pd.read_csv(path, sep=sep, low_memory=False)
    except pd.errors.EmptyDataError:
        raise UsageError(f"{path} is empty; give a header line and at least one row.") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text; save it with UTF-8 encoding.") from None
    except (ValueError, OSError) as err:  # ParserError, pyarrow's ArrowInvalid, permissions
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UsageError(
            f"cannot read {path} as {form}: {reason}; check that it is a valid {form} file."
        ) from None
    if frame.shape[1] == 0 or len(frame) == 0:
        raise UsageError(f"{path} has no rows; give a header line and at least one row.")
    if sep is not None:
        _refuse_repeated_names(path, sep)
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _refuse_repeated_names(path: Path, sep: str) -> None:
    """pandas silently renames a repeated header name (`a`, `a` -> `a`, `a.1`), so a
    model would train on a column the user never named: refuse the file instead."""
    with path.open(encoding="utf-8-sig", newline="") as file:
        header = next(csv.reader(file, delimiter=sep), [])
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        names = ", ".join(repr(name) for name in repeated)
        raise UsageError(
            f"{path} has more than one column named {names}; give each column its own name."
        )


def require_column(frame: pd.DataFrame, name: str, path: Path | str) -> None:
    """Raise a `UsageError` listing the table's columns if `name` is not one of them."""
    if name in frame.columns:
        return
    columns = [str(c) for c in frame.columns]
    close = difflib.get_close_matches(name, columns, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    shown = ", ".join(columns[:30]) + (
        f", ... ({len(columns) - 30} more)" if len(columns) > 30 else ""
    )
    raise UsageError(f"{path} has no column {name!r}; {hint}its columns are: {shown}.")


def load_table(
    path: Path,
    *,
    target: str,
    task: str | None = None,
    seed: int | None = 0,
    exclude: tuple[str, ...] = (),
) -> Dataset:
    """Load a table and split it into train, validation and test, ready for a search.

    Args:
        path: A `.csv`, `.tsv`/`.tab` or `.parquet`/`.pq` file with a header.
        target: The column to predict.
        task: "binary", "multiclass", "classification", "regression", or None to detect.
        seed: Seed of the validation split.
        exclude: Columns that are not features (ids, free text, leaks).

    Returns:
        A "table" `Dataset`: raw DataFrame splits and a `TableEncoder` fitted on
        `x_train` only.

    Raises:
        UsageError: On unreadable files, unknown columns, bad targets, empty or garbled
            columns, or no feature columns.
    """
    from automl.data._split import hold_out, split_dataset
    from automl.data._table_encoder import TableEncoder
    from automl.data._targets import encode_target

    path = Path(path)
    frame = read_table(path)
    for name in (target, *exclude):
        require_column(frame, name, path)
    y, class_names, task = encode_target(frame[target], task, what=f"column {target!r}")
    dropped = {target, *exclude}
    features = frame[[c for c in frame.columns if c not in dropped]]
    if features.shape[1] == 0:
        raise UsageError(
            f"{path} has no feature columns besides the target {target!r}"
            + (" and the excluded ones" if exclude else "")
            + "; a table needs at least one other column."
        )
    kinds = column_kinds(features, locate=_locator(path))
    identifiers = _identifiers(features, kinds, path)
    if identifiers:
        if len(identifiers) == len(kinds):
            raise UsageError(
                f"{path} has no feature columns besides the target {target!r}: every other "
                f"column ({', '.join(map(repr, identifiers))}) holds a different text in "
                "each row, an identifier; a table needs at least one column to learn from."
            )
        features = features.drop(columns=identifiers)
        kinds = {name: kind for name, kind in kinds.items() if name not in identifiers}
    x = _normalize(features, kinds)
    train, test = hold_out(x, y, stratify=task == "classification")
    data = split_dataset(path.stem, "table", class_names, train, test, seed=seed, source=str(path))
    data.encoder = TableEncoder(kinds).fit(data.x_train)  # train only: no peeking at val/test
    counts = {k: sum(v == k for v in kinds.values()) for k in _INPUT_DTYPES}
    logger.info("%s: %d rows, columns by kind: %s", path, len(frame), counts)
    return data


def _identifiers(frame: pd.DataFrame, kinds: dict[str, str], path: Path) -> list[str]:
    """Text columns with a different value in every row (ids, names, free text), with one
    warning naming them: one-hot over values seen once is noise, and no value of the
    validation or test rows would be known."""
    found = [
        name
        for name, kind in kinds.items()
        if kind == "string" and frame[name].notna().all() and frame[name].nunique() == len(frame)
    ]
    if found:
        logger.warning(
            "left out column%s %s of %s: every row holds a different text (an identifier, "
            "not a category); a model cannot learn from it",
            "s" if len(found) > 1 else "",
            ", ".join(map(repr, found)),
            path,
        )
    return found


def column_kinds(
    frame: pd.DataFrame, *, locate: Callable[[int], str] = lambda i: f"row {i + 1}"
) -> dict[str, str]:
    """Type every column as "numeric", "integer" or "string" (see the module docstring).

    Args:
        frame: The feature columns, rows in file order.
        locate: Names the row at a position for error messages (e.g. its line number).

    Raises:
        UsageError: On a column that is empty in every row, holds infinity, or is
            numeric apart from a few unparsable cells.
    """
    kinds = {}
    for name in frame.columns:
        column = frame[name]
        if column.isna().all():
            raise UsageError(
                f"column {name!r} is empty in every row; drop it from the table or exclude it."
            )
        kinds[str(name)] = _kind(str(name), column, locate)
    return kinds


def _kind(name: str, column: pd.Series, locate: Callable[[int], str]) -> str:
    if pd.api.types.is_bool_dtype(column):
        return "string"
    if pd.api.types.is_integer_dtype(column):
        # A nullable integer column with gaps needs NaN, so floats.
        if column.isna().any() or column.nunique() > MAX_INTEGER_CATEGORIES:
            return "numeric"
        return "integer"
    if pd.api.types.is_numeric_dtype(column):
        infinite = np.isinf(column.to_numpy(dtype="float64", na_value=np.nan))
        if infinite.any():
            where = locate(int(np.flatnonzero(infinite)[0]))
            raise UsageError(f"column {name!r} holds infinity at {where}; fix or blank that cell.")
        return "numeric"
    if pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column):
        present = column.dropna()
        parsed = pd.to_numeric(present, errors="coerce")
        bad = parsed.isna().to_numpy()
        if bad.any() and 1 - bad.mean() >= NUMERIC_SHARE:
            first = int(np.flatnonzero(bad)[0])
            position = column.index.get_loc(present.index[first])
            more = f" (and {bad.sum() - 1} more cells)" if bad.sum() > 1 else ""
            raise UsageError(
                f"column {name!r} is numeric but {locate(position)} holds "
                f"{present.iloc[first]!r}{more}; fix or blank that cell."
            )
    return "string"  # text, bool-with-gaps, category, dates: categories of their text


def _locator(path: Path) -> Callable[[int], str]:
    """How errors name a row: its line in a text file (the header is line 1)."""
    if path.suffix.lower() not in _SEPARATORS:
        return lambda i: f"row {i + 1}"
    return lambda i: f"line {i + 2}"


def _normalize(frame: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """The raw splits' columns: text as `str` with NaN for missing, numbers as numbers."""
    columns = {}
    for name, kind in kinds.items():
        column = frame[name]
        if kind == "string":
            column = column.astype("str").replace(MISSING, np.nan)
        elif kind == "numeric" and not pd.api.types.is_float_dtype(column):
            column = column.astype("float64")  # nullable integers: NA becomes NaN
        elif kind == "integer":
            column = column.astype("int64")
        columns[name] = column
    return pd.DataFrame(columns, index=frame.index)


def table_input(frame: pd.DataFrame, model: keras.Model | None = None) -> dict[str, np.ndarray]:
    """What a table model's `predict` takes for raw rows: one array per column.

    Keras cannot feed None or NaN to a string input, nor numpy's fixed-width strings:
    text becomes an object array of `str` with "" for missing; numbers become float32
    (NaN for missing) or int64.

    Args:
        frame: Raw rows.
        model: The exported model (or the preprocessor); its inputs choose the columns
            and their dtypes. Without it, each column's dtype decides.

    Raises:
        UsageError: If `frame` lacks a column the model takes.
    """
    if model is None:
        dtypes = {str(c): _input_dtype(frame[c]) for c in frame.columns}
    else:
        dtypes = {key: tensor.dtype for key, tensor in _named_inputs(model).items()}
        for name in dtypes:
            require_column(frame, name, "the rows")
    out = {}
    for name, dtype in dtypes.items():
        column = frame[name]
        if dtype == "string":
            text = column.astype(object).where(column.notna(), MISSING)
            out[name] = np.array([str(v) for v in text], dtype=object)
        elif dtype == "int64" and not column.isna().any():
            out[name] = column.to_numpy(dtype="int64")
        else:  # a missing integer code arrives as NaN and lands in the OOV slot
            out[name] = column.to_numpy(dtype="float32", na_value=np.nan)
    return out


def _input_dtype(column: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        return "string"
    return "int64" if pd.api.types.is_integer_dtype(column) else "float32"


def _named_inputs(model: keras.Model) -> dict[str, Any]:
    """The model's inputs by the key `predict` expects (the column name)."""
    structure = model.input
    if not isinstance(structure, dict):
        raise UsageError(f"model {model.name!r} does not take a dict of table columns.")
    return structure
