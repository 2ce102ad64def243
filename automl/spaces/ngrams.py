"""Bag-of-n-grams statistics: the word-bigram vocabulary and the idf weights of a text
study, fitted on its training token ids.

A text trial trains on token ids (`TextVectorization`'s, or a set's own ids: 0 is
padding, 1 the out-of-vocabulary id of `TextVectorization`). The `ngrams` space turns
them into a bag of word n-grams inside the model (`automl.spaces.layers.NgramBag`), so
the exported model still takes raw strings through the same vectorizer. The bag's
feature table is what `TextVectorization(ngrams=2, output_mode="tf_idf")` would adapt:
every unigram id, the most frequent bigrams of the training texts, and one inverse
document frequency per feature, `log(1 + n / (1 + df))` as Keras computes it.

What lives here: the numpy fit (`fit_ngrams`) and the key of a bigram. The sample of
training ids comes from `ModelSpec.token_sample`; the layer lives in
`automl.spaces.layers`.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

logger = logging.getLogger("automl")

# Most bigrams kept: TextVectorization's usual max_tokens, and ~80 MB of bag per batch
# of 256 in float32 at most (with a 20,000-word vocabulary).
MAX_BIGRAMS = 20_000
# A bigram seen in one training text cannot generalize; it would only add weights.
MIN_BIGRAM_TEXTS = 2
# Texts the statistics are fitted on at most: document frequencies settle long before.
MAX_TEXTS = 20_000


@dataclasses.dataclass(frozen=True)
class NgramTable:
    """The features of one bag: unigram ids `[0, vocab_size)`, then `bigram_keys`.

    Attributes:
        vocab_size: Unigram features (token ids are below it).
        bigram_keys: Sorted `bigram_key`s of the bigram features (int32).
        idf: One inverse document frequency per feature (float32); 0 for padding.
    """

    vocab_size: int
    bigram_keys: np.ndarray
    idf: np.ndarray

    @property
    def size(self) -> int:
        """Features in the bag."""
        return self.vocab_size + len(self.bigram_keys)


def bigram_key(first: np.ndarray, second: np.ndarray, vocab_size: int) -> np.ndarray:
    """One int per pair of ids: `first * vocab_size + second` (below 2^31 for any
    vocabulary of up to 46,340 ids, so int32 holds it on every backend)."""
    return first.astype(np.int64) * vocab_size + second


def fit_ngrams(ids: np.ndarray | None, vocab_size: int, length: int, ngrams: int) -> NgramTable:
    """The bag's features for a trial's vocabulary size, sequence length and n-gram order.

    Args:
        ids: Training token ids (n, steps), as the study encodes them at its largest
            vocabulary and length: a trial's own ids are these with every id at or above
            its `vocab_size` made 1 (out of vocabulary) and the steps cut to its
            `length`, which is what is done here. None: no statistics (unigrams only,
            every idf 1).
        vocab_size: The trial's number of token ids.
        length: The trial's sequence length.
        ngrams: 1 (words) or 2 (words and word pairs).
    """
    if ngrams >= 2 and vocab_size * vocab_size >= 2**31:
        logger.info(
            "ngrams: word pairs are left out for a vocabulary of %d ids (their keys must "
            "fit in int32, which holds at most 46,340 ids); words only",
            vocab_size,
        )
        ngrams = 1
    if ids is None or not len(ids):
        return NgramTable(vocab_size, np.zeros((0,), "int32"), _unit_idf(vocab_size))
    ids = np.asarray(ids[:MAX_TEXTS, :length], dtype=np.int64)
    ids = np.where(ids >= vocab_size, 1, ids)
    texts = len(ids)
    rows = np.arange(texts, dtype=np.int64)[:, None]
    # Document frequency: each (text, feature) pair counted once.
    unigram_df = _document_counts(rows, ids, ids > 0, vocab_size)
    keys = np.zeros((0,), "int32")
    bigram_df = np.zeros((0,), np.int64)
    if ngrams >= 2 and ids.shape[1] > 1:
        pairs = bigram_key(ids[:, :-1], ids[:, 1:], vocab_size)
        valid = (ids[:, :-1] > 0) & (ids[:, 1:] > 0)
        keys, bigram_df = _frequent_bigrams(rows, pairs, valid)
    df = np.concatenate([unigram_df, bigram_df]).astype(np.float64)
    idf = np.log1p(texts / (1.0 + df)).astype("float32")
    idf[0] = 0.0  # padding is no feature
    return NgramTable(vocab_size, keys, idf)


def _document_counts(
    rows: np.ndarray, features: np.ndarray, valid: np.ndarray, size: int
) -> np.ndarray:
    """Texts in which each feature in `[0, size)` occurs."""
    seen = np.unique((rows * size + features)[valid])
    return np.bincount(seen % size, minlength=size)


def _frequent_bigrams(
    rows: np.ndarray, pairs: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The `MAX_BIGRAMS` bigrams in the most texts (at least `MIN_BIGRAM_TEXTS`), sorted
    by key, with their document counts."""
    # A (text, key) pair once: keys stay below 2^31 and texts below 2^32, so int64 holds it.
    seen = np.unique((rows << 31 | pairs)[valid])
    keys, df = np.unique(seen & (2**31 - 1), return_counts=True)
    kept = df >= MIN_BIGRAM_TEXTS
    keys, df = keys[kept], df[kept]
    if len(keys) > MAX_BIGRAMS:  # most texts first; ties by key, so the fit is repeatable
        top = np.lexsort((keys, -df))[:MAX_BIGRAMS]
        top.sort()  # keys are sorted, so sorted positions keep them sorted
        keys, df = keys[top], df[top]
    return keys.astype("int32"), df


def _unit_idf(vocab_size: int) -> np.ndarray:
    idf = np.ones((vocab_size,), "float32")
    idf[0] = 0.0
    return idf
