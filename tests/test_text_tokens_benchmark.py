"""The tokenizations `benchmarks.text_tokens` compares words with: character n-grams across
words (scikit-learn's "char") and within each " word " (its "char_wb"), Keras-native
(`TextVectorization(split="character", ngrams=...)`), on a few real texts."""

from __future__ import annotations

import collections
import types

import numpy as np

from automl.data._text import TextEncoder
from benchmarks import text_tokens

TRAIN = np.array(["win fr33 now", "hey win", "call me now", "fr33 call"], dtype=object)
TEST = np.array(["win now zzz"], dtype=object)  # zzz: a word never seen in training


def _data() -> types.SimpleNamespace:
    encoder = TextEncoder(TRAIN)
    return types.SimpleNamespace(
        x_train=TRAIN,
        x_val=TRAIN[:2],
        x_test=TEST,
        encoder=encoder,
        encode=lambda hp: encoder.encode(TRAIN, TRAIN[:2], hp),
    )


def _grams(text: str) -> collections.Counter:
    """The 2- to 5-grams of `text`, as TextVectorization joins characters."""
    chars = list(text)
    return collections.Counter(
        " ".join(chars[i : i + n]) for n in text_tokens.ORDERS for i in range(len(chars) - n + 1)
    )


def _bag(ids: np.ndarray, vocabulary: list[str]) -> collections.Counter:
    return collections.Counter(vocabulary[i] for i in ids if i > 0)


def test_char_wb_ids_stay_within_known_words_and_char_ids_cross_them(monkeypatch):
    """Each text's char_wb ids are the n-grams of " word " for its known words (an unseen
    word has none, as the word ids make it [UNK]); char ids include n-grams across the
    space between two words."""
    import keras

    vocabularies = []
    adapt = keras.layers.TextVectorization.adapt

    def keep(layer, *args, **kwargs):
        adapt(layer, *args, **kwargs)
        vocabularies.append(layer.get_vocabulary())

    monkeypatch.setattr(keras.layers.TextVectorization, "adapt", keep)
    data = _data()
    vocabularies.clear()  # the TextEncoder's own word vocabulary
    (train, _, test), size = text_tokens.char_wb_ids(data)
    assert size == len(vocabularies[-1])
    assert _bag(test[0], vocabularies[-1]) == _grams(" win ") + _grams(" now ")
    assert _bag(train[1], vocabularies[-1]) == _grams(" hey ") + _grams(" win ")
    (train, _, _), _ = text_tokens.char_ids(data)
    assert _bag(train[1], vocabularies[-1]) == _grams("hey win")
    assert "y   w" in vocabularies[-1]  # "y", " ", "w": across the words


def test_sequences_are_right_padded_to_a_power_of_two_of_the_95th_percentile():
    splits = [[[3] * 5, [4] * 3], [[5] * 9], []]
    train, val, test = text_tokens._padded(splits)
    assert train.shape == (2, 8) and train.dtype == np.int32
    assert train[1].tolist() == [4, 4, 4, 0, 0, 0, 0, 0]
    assert val[0].tolist() == [5] * 8  # cut at the length
    assert test.shape == (0, 8)
