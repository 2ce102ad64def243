"""Text tables: a column of texts and a target, vectorized by `TextVectorization`.

The vocabulary is adapted once per study, on the training split only, up to
`MAX_VOCAB` words sorted by frequency. Each trial picks a vocabulary size and a sequence
length (`text.vocab_size`, `text.sequence_length`, search dimensions like any other);
a smaller vocabulary is the most frequent words of the adapted one, so no trial adapts
again. Encoded ids are cached per choice. Sequences are right-padded with 0, as cuDNN's
RNN kernels require. The exported model takes raw strings.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from automl._errors import UsageError
from automl.data._dataset import Dataset
from automl.data._encoding import Encoded

if TYPE_CHECKING:
    import keras

    from automl.spaces import HyperParameters

logger = logging.getLogger("automl")

MAX_VOCAB = 20_000
VOCAB_CHOICES = (5_000, 10_000, 20_000)
# Attention memory grows with length squared: 512 tokens is the cap.
LENGTH_CHOICES = (32, 64, 128, 256, 512)
_CACHED_CHOICES = 4
# From this share of empty texts on, the warning asks whether the column is the right one.
MOSTLY_EMPTY = 0.5


def load_text_table(
    path: Path, *, target: str, text_column: str, task: str | None = None, seed: int | None = 0
) -> Dataset:
    """Read a table with a text column and a target, drop empty texts, split it.

    Raises:
        UsageError: On a missing file or column, a bad target, or no text left.
    """
    from automl.data._split import hold_out, split_dataset
    from automl.data._table import read_table, require_column
    from automl.data._targets import encode_target

    frame = read_table(path)
    require_column(frame, target, path)
    require_column(frame, text_column, path)
    texts = frame[text_column].astype("object")
    empty = texts.isna().to_numpy() | np.array(
        [not str(t).strip() for t in texts.fillna("")], dtype=bool
    )
    if empty.all():
        raise UsageError(f"column {text_column!r} of {path} holds no text in any row.")
    if empty.any():
        first = int(np.flatnonzero(empty)[0])
        share = float(empty.mean())
        logger.warning(
            "dropped %d rows whose %r text is empty (first at line %d of %s): %s of the rows%s",
            int(empty.sum()),
            text_column,
            first + 2,  # 1-based, after the header line
            path,
            _percent(share),
            f"; most of the column is empty, is {text_column!r} the text column?"
            if share >= MOSTLY_EMPTY
            else "",
        )
    x = np.array([str(t) for t in texts[~empty]], dtype=object)
    y, class_names, task = encode_target(
        frame[target][~empty].to_numpy(), task, what=f"column {target!r}"
    )
    train, test = hold_out(x, y, stratify=task == "classification")
    data = split_dataset(path.stem, "text", class_names, train, test, seed=seed, source=str(path))
    data.encoder = TextEncoder(data.x_train)
    return data


def _percent(share: float) -> str:
    """A share as a percentage that never rounds a few rows to 0 % or all to 100 %."""
    if 0 < share < 0.001:
        return "< 0.1 %"
    if 0.999 < share < 1:
        return "> 99.9 %"
    return f"{share:.1%}".replace("%", " %")


class TextEncoder:
    """Vectorizes raw strings for a trial's vocabulary size and sequence length.

    Args:
        texts: The training split's texts; the vocabulary and length choices come from
            them alone.
    """

    def __init__(self, texts: np.ndarray) -> None:
        import keras

        adapter = keras.layers.TextVectorization(max_tokens=MAX_VOCAB + 2)
        adapter.adapt(texts, batch_size=1024)
        self.vocabulary = [str(t) for t in adapter.get_vocabulary()[2:]]  # no "", [UNK]
        total = len(self.vocabulary) + 2
        self.vocab_choices = [k for k in VOCAB_CHOICES if k < total] + [min(total, MAX_VOCAB)]
        self.vocab_choices = sorted(set(self.vocab_choices))
        lengths = np.array([len(str(t).split()) for t in texts])
        longest = float(np.percentile(lengths, 95))
        fitting = [n for n in LENGTH_CHOICES if n < 2 * longest]  # no choice pads 2x
        self.length_choices = fitting or [LENGTH_CHOICES[0]]
        self._cache: OrderedDict[tuple[int, int], Encoded] = OrderedDict()

    def choose(self, hp: HyperParameters | None) -> tuple[int, int]:
        """The vocabulary size and sequence length: the trial's, or the defaults."""
        if hp is None:
            return self.vocab_choices[-1], self.length_choices[-1]
        with hp.name_scope("text"):
            vocab = hp.Choice("vocab_size", self.vocab_choices)
            length = hp.Choice("sequence_length", self.length_choices)
        return int(vocab), int(length)

    def encode(self, x_train: Any, x_val: Any, hp: HyperParameters | None) -> Encoded:
        """Token ids of both splits for the trial's choices (cached per choice)."""
        key = self.choose(hp)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        vectorizer = self.vectorizer(*key)
        encoded = Encoded(
            x_train=_ids(vectorizer, x_train, key[1]),
            x_val=_ids(vectorizer, x_val, key[1]),
            kind="text",
            vocab_size=key[0],
            wrap=lambda model: _wrap(vectorizer, model),
        )
        self._cache[key] = encoded
        if len(self._cache) > _CACHED_CHOICES:
            self._cache.popitem(last=False)
        return encoded

    def vectorizer(self, vocab_size: int, length: int) -> keras.layers.TextVectorization:
        """A `TextVectorization` with the `vocab_size` most frequent training words."""
        import keras

        return keras.layers.TextVectorization(
            max_tokens=vocab_size,
            output_sequence_length=length,
            vocabulary=self.vocabulary[: vocab_size - 2],
            name="vectorize",
        )


def _ids(vectorizer: keras.layers.TextVectorization, texts: np.ndarray, length: int) -> np.ndarray:
    """Token ids (n, length), int32, in batches so memory stays flat."""
    if not len(texts):
        return np.zeros((0, length), dtype="int32")
    parts = [np.asarray(vectorizer(texts[i : i + 4096])) for i in range(0, len(texts), 4096)]
    return np.concatenate(parts).astype("int32")


def _wrap(vectorizer: keras.layers.TextVectorization, model: keras.Model) -> keras.Model:
    """raw strings (shape (n,), object dtype) -> token ids -> the trained model."""
    import keras

    raw = keras.Input(shape=(), dtype="string", name="text")
    return keras.Model(raw, model(vectorizer(raw)), name=f"{model.name}_on_text")
