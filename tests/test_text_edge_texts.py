"""Issue #20: RNN and transformer trials stay finite on the texts real tables hold: empty
texts, texts with no token ("!!!"), texts made only of out-of-vocabulary words, one-word
texts and texts far longer than the sequence length (no padding at all).

The texts go through the study's own `TextEncoder` (its vocabulary cut so the rare words
are out of vocabulary, as a trial's smaller `text.vocab_size` does), every model trains
for real at a high learning rate, and the exported model on raw strings predicts finite
probabilities for each kind of text.
"""

from __future__ import annotations

import random

import keras
import numpy as np
import pytest
from optuna.trial import FixedTrial

from automl.data._text import TextEncoder
from automl.spaces import HyperParameters, ModelSpec
from search_spaces import ngrams, rnn, transformer
from tests._texts import FILLER, NEGATIVE, POSITIVE

# Six real trainings at a high learning rate: with the slow checks, keeping the default
# suite short.
pytestmark = pytest.mark.slow

LENGTH = 32
EDGE_TEXTS = {
    "empty": "",
    "no token": "!!! ...",
    "unknown words only": "rarewordone rarewordtwo rarewordthree",
    "one word": "great",
    "very long": " ".join(["the movie was boring"] * 400),  # 1,600 words, cut to 32 ids
}


def _texts(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """240 reviews; every sixth text is one of the edge texts (rare words made unique, so
    the cut vocabulary leaves them out), labelled like the others."""
    rng = random.Random(seed)
    texts, labels = [], []
    edges = list(EDGE_TEXTS.values())
    for i in range(240):
        label = rng.randint(0, 1)
        if i % 6 == 0:
            text = edges[(i // 6) % len(edges)].replace("rareword", f"rare{i}word")
        else:
            cue = POSITIVE if label else NEGATIVE
            words = rng.choices(FILLER, k=rng.randint(1, 30)) + rng.choices(cue, k=2)
            rng.shuffle(words)
            text = " ".join(words)
        texts.append(text)
        labels.append(label)
    return np.array(texts, dtype=object), np.array(labels)


@pytest.fixture(scope="module")
def encoded():
    """Token ids with a vocabulary of the frequent words only: every rare word is id 1."""
    texts, labels = _texts()
    encoder = TextEncoder(texts)
    common = 2 + len(set(FILLER) | set(POSITIVE) | set(NEGATIVE))  # padding, [UNK], words
    vectorizer = encoder.vectorizer(common, LENGTH)
    ids = np.asarray(vectorizer(texts)).astype("int32")
    unknown = [i for i, t in enumerate(texts) if t.startswith("rare")]
    assert unknown and (ids[unknown][:, :3] == 1).all()  # unknown words only: all [UNK]
    assert ((ids == 0).all(axis=1)).sum() >= 2  # empty and no-token texts: all padding
    assert (ids[[i for i, t in enumerate(texts) if len(t) > 1000]] > 0).all()  # no padding
    return texts, labels, ids, vectorizer


def _spec(ids: np.ndarray, vectorizer) -> ModelSpec:
    return ModelSpec(
        (LENGTH,),
        "text",
        "classification",
        2,
        len(ids),
        2,
        vocab_size=vectorizer.vocabulary_size(),
        token_sample=ids,
    )


POINTS = [
    ("rnn", {}),
    ("rnn", {"cell": "gru", "bidirectional": False, "layers": 2}),
    ("transformer", {}),
    ("transformer", {"pooling": "max", "norm_first": False, "position": "sinusoidal"}),
    ("transformer", {"position": "none", "label_smoothing": 0.1}),
    ("ngrams", {}),
]


@pytest.mark.parametrize(
    ("space", "changes"), POINTS, ids=[f"{s}-{i}" for i, (s, _) in enumerate(POINTS)]
)
def test_edge_texts_train_finite_and_predict_finite(encoded, space, changes):
    """Two epochs at a high learning rate: finite losses and validation losses, and the
    model on raw strings gives finite probabilities summing to 1 for every edge text."""
    texts, labels, ids, vectorizer = encoded
    spec = _spec(ids, vectorizer)
    module = {"rnn": rnn, "transformer": transformer, "ngrams": ngrams}[space]
    point = {**module.starting_points(spec)[0], **changes}
    point["learning_rate"] = max(point["learning_rate"], 5e-3)
    keras.utils.set_random_seed(0)
    hp = HyperParameters(FixedTrial(point))
    model = module.build(hp, spec)
    history = model.fit(
        ids[:192],
        labels[:192],
        validation_data=(ids[192:], labels[192:]),
        epochs=2,
        verbose=0,
        callbacks=hp.callbacks,
        **{**hp.fit_kwargs, "batch_size": 16},
    )
    for name in ("loss", "val_loss"):
        assert np.isfinite(history.history[name]).all(), (name, history.history[name])
    raw = keras.Input(shape=(), dtype="string")
    on_text = keras.Model(raw, model(vectorizer(raw)))
    probabilities = on_text.predict(np.array(list(EDGE_TEXTS.values()), dtype=object), verbose=0)
    assert np.isfinite(probabilities).all(), dict(zip(EDGE_TEXTS, probabilities, strict=True))
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)
