"""`TableEncoder`: table rows to one float32 vector, with the training split's statistics.

Numbers are filled, flagged and standardized; each category column is one-hot over its
`MAX_CATEGORIES` most frequent training values. A column with more distinct values than
that (a high-cardinality category: a neighbourhood, a product code) also gets an id
column at the end of the vector, over up to `MAX_EMBEDDED` values seen at least
`MIN_EMBEDDED_COUNT` times in training (the rest share id 0), so that spaces that embed
categories (`tabular`) can learn a vector per value; `ModelSpec.inputs` leaves those ids
out for every other space. The encoder is a Keras model, so the exported model takes
raw columns.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from automl.data._encoding import Encoded
from automl.data._table import _INPUT_DTYPES, MAX_CATEGORIES, MISSING, table_input

if TYPE_CHECKING:
    import keras

    from automl.spaces import HyperParameters

MAX_EMBEDDED = 1_000  # ids per high-cardinality column; rarer values share the OOV id 0
MIN_EMBEDDED_COUNT = 2  # a value seen once would train its own vector on one row


class TableEncoder:
    """Encodes table columns into one float32 vector, with statistics of the training split.

    Implements the `Encoder` protocol. Tables have no search dimensions, so `encode`
    runs once and is cached. The Keras preprocessing model is built on first use and not
    pickled (datasets may travel to worker processes).

    Args:
        kinds: Column name -> "numeric", "integer" or "string", in input order.
        max_categories: Most frequent training values one-hot encoded per column.

    Attributes:
        stats_: Fitted statistics: "fill", "indicate", "mean", "variance" for the
            numeric block, "vocabulary" (column -> values) for the one-hot of the
            others, and "embedded" (column -> values with an id) for the
            high-cardinality ones.
    """

    def __init__(self, kinds: dict[str, str], *, max_categories: int = MAX_CATEGORIES) -> None:
        self.kinds = dict(kinds)
        self.max_categories = max_categories
        self._model: keras.Model | None = None
        self._inputs: dict[str, Any] = {}
        self._cache: tuple[int, int, Encoded] | None = None

    def fit(self, x_train: pd.DataFrame) -> TableEncoder:
        """Learn fill values, normalization statistics and vocabularies from `x_train`."""
        numeric = [n for n, k in self.kinds.items() if k == "numeric"]
        values = x_train[numeric].to_numpy(dtype="float64", na_value=np.nan)
        missing = np.isnan(values)
        with warnings.catch_warnings():  # a column missing in every training row: fill 0
            warnings.simplefilter("ignore", RuntimeWarning)
            fill = np.nan_to_num(np.nanmean(values, axis=0)) if numeric else np.zeros(0)
        # Indicators only for columns with gaps in training: elsewhere they would be a
        # constant the model cannot learn from; a later gap there is filled with the mean.
        indicate = missing.any(axis=0)
        block = np.concatenate(
            [np.where(missing, fill, values), missing[:, indicate].astype("float64")], axis=1
        )
        self.stats_: dict[str, Any] = {
            "fill": fill.tolist(),
            "indicate": indicate.tolist(),
            "mean": block.mean(axis=0).tolist() if len(block) else [],
            "variance": block.var(axis=0).tolist() if len(block) else [],
            "vocabulary": {
                name: self._vocabulary(x_train[name], kind)
                for name, kind in self.kinds.items()
                if kind != "numeric"
            },
            "embedded": self._embedded(x_train),
        }
        self._model, self._cache = None, None
        return self

    def _embedded(self, x_train: pd.DataFrame) -> dict[str, list[Any]]:
        """Column -> the values with an id, for the columns with more distinct training
        values than one-hot keeps and at least one value seen `MIN_EMBEDDED_COUNT` times."""
        embedded = {}
        for name, kind in self.kinds.items():
            if kind == "numeric" or _as_category(x_train[name], kind).nunique() <= (
                self.max_categories
            ):
                continue
            values = _ranked_values(x_train[name], kind, MIN_EMBEDDED_COUNT)[:MAX_EMBEDDED]
            if values:
                embedded[name] = values
        return embedded

    @property
    def categories(self) -> tuple[int, ...]:
        """Ids of each id column at the end of the vector (its values + the OOV id 0)."""
        return tuple(len(v) + 1 for v in self.stats_.get("embedded", {}).values())

    def _vocabulary(self, column: pd.Series, kind: str) -> list[Any]:
        """Training values, most frequent first (ties by value), capped at max_categories."""
        return _ranked_values(column, kind)[: self.max_categories]

    def preprocessor(self) -> keras.Model:
        """The Keras model from a dict of raw columns to the float32 feature vector."""
        if self._model is None:
            self._model = self._build()
        return self._model

    def encode(
        self, x_train: pd.DataFrame, x_val: pd.DataFrame, hp: HyperParameters | None = None
    ) -> Encoded:
        """The float32 feature vectors of both splits (hp is ignored; computed once)."""
        key = (id(x_train), id(x_val))
        if self._cache is None or self._cache[:2] != key:
            encoded = Encoded(
                self.transform(x_train),
                self.transform(x_val),
                "vector",
                wrap=self.wrap,
                categories=self.categories,
            )
            self._cache = (*key, encoded)
        return self._cache[2]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw rows -> float32 (n, width), through the same model `wrap` exports."""
        model = self.preprocessor()
        if len(frame) == 0:
            return np.zeros((0, model.output.shape[-1]), dtype="float32")
        out = model.predict(table_input(frame, model), batch_size=8192, verbose=0)
        return np.asarray(out, dtype="float32")

    def wrap(self, model: keras.Model) -> keras.Model:
        """`model` (trained on the vectors) behind the preprocessing: takes raw columns."""
        import keras

        pre = self.preprocessor()
        with warnings.catch_warnings():  # input names differ from keys when columns hold "/"
            warnings.simplefilter("ignore", UserWarning)
            return keras.Model(self._inputs, model(pre.output), name=f"{model.name}_table")

    def _build(self) -> keras.Model:
        import keras

        from automl.data.layers import FillMissing

        stats = self.stats_
        self._inputs = _inputs(self.kinds)
        parts = []
        numeric = [self._inputs[n] for n, k in self.kinds.items() if k == "numeric"]
        if numeric:
            block = (
                numeric[0]
                if len(numeric) == 1
                else keras.layers.Concatenate(name="automl_numeric")(numeric)
            )
            block = FillMissing(stats["fill"], stats["indicate"], name="automl_fill")(block)
            normalize = keras.layers.Normalization(
                mean=stats["mean"], variance=stats["variance"], name="automl_normalize"
            )
            parts.append(normalize(block))
        for i, (name, vocabulary) in enumerate(stats["vocabulary"].items()):
            lookup = _lookup(self.kinds[name], vocabulary, "one_hot", f"automl_lookup_{i}")
            parts.append(lookup(self._inputs[name]))
        # Id columns last, in `categories` order: ModelSpec.inputs slices them off the end.
        for i, (name, vocabulary) in enumerate(stats.get("embedded", {}).items()):
            lookup = _lookup(self.kinds[name], vocabulary, "int", f"automl_category_id_{i}")
            parts.append(lookup(self._inputs[name]))
        # Lookups yield int64 at run time; Concatenate promotes everything to float32.
        features = keras.layers.Concatenate(name="automl_features")(parts)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return keras.Model(self._inputs, features, name="table_preprocessor")

    def __getstate__(self) -> dict[str, Any]:
        # Keras models do not pickle; the statistics rebuild them on first use.
        return {**self.__dict__, "_model": None, "_inputs": {}, "_cache": None}


def _inputs(kinds: dict[str, str]) -> dict[str, Any]:
    """One `keras.Input` of shape (1,) per column, keyed by the column name."""
    import keras

    used: set[str] = set()
    inputs = {}
    for name, kind in kinds.items():
        # Keras names cannot hold "/" and must be unique; the dict key stays the column.
        layer_name = name.replace("/", "_")
        if layer_name.startswith("automl_"):  # the preprocessing layers' own prefix
            layer_name = f"column_{layer_name}"
        while layer_name in used:
            layer_name = f"{layer_name}_"
        used.add(layer_name)
        inputs[name] = keras.Input(shape=(1,), name=layer_name, dtype=_INPUT_DTYPES[kind])
    return inputs


def _as_category(column: pd.Series, kind: str) -> pd.Series:
    """A category column as the lookups see it (missing text is its own value)."""
    return column.fillna(MISSING).astype("str") if kind == "string" else column


def _ranked_values(column: pd.Series, kind: str, min_count: int = 1) -> list[Any]:
    """Training values seen at least `min_count` times, most frequent first (ties by
    value)."""
    counts = _as_category(column, kind).value_counts()
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    cast = str if kind == "string" else int
    return [cast(value) for value, count in ranked if count >= min_count]


def _lookup(kind: str, vocabulary: list[Any], mode: str, name: str) -> keras.layers.Layer:
    """A `StringLookup` or `IntegerLookup` over `vocabulary` (OOV first) in `mode`."""
    import keras

    if kind == "string":
        return keras.layers.StringLookup(vocabulary=vocabulary, output_mode=mode, name=name)
    # The OOV token must not be a real value (Keras' default -1 may be one).
    oov = min(vocabulary) - 1 if vocabulary else -1
    return keras.layers.IntegerLookup(
        vocabulary=vocabulary, oov_token=oov, output_mode=mode, name=name
    )
