"""`ngrams`: a bag of word n-grams with a linear or shallow MLP head, for text.

What people reach for first on short texts, in Keras: each text becomes the counts of its
words and word pairs (`NgramBag`, what `TextVectorization(ngrams=2)` outputs, fitted on
the training texts: every vocabulary word, the 20,000 word pairs found in the most
texts), weighted by their inverse document frequency ("tf_idf") or marked present
("multi_hot"), optionally scaled to unit length; then a softmax (or linear) layer, or
one hidden layer before it. On short texts this is the bar: scikit-learn's TF-IDF +
LogisticRegression, which it mirrors, trains in seconds. It is the cheapest text family,
so `auto` tries it first.

The bag is computed inside the model from the token ids every text trial trains on, so
it takes the trial's vocabulary size and sequence length (`text.vocab_size`,
`text.sequence_length`) like the other text spaces, and the exported model still takes
raw strings through the study's vectorizer.

`STARTING_POINTS` hold two linear models on unit-length bags of words and word pairs,
L2 1e-4 on the kernel (about scikit-learn's C=1 for a mean loss over a few thousand
texts), Adam at 3e-2 (a linear model on unit-length inputs learns slowly at Adam's usual
1e-3), batch 32: multi-hot first, then tf-idf, scikit-learn's recipe. Measured on 3,000
generated texts whose label hangs on a word pair ("not good") among 3,000 filler words
(2026-12-01, 2 CPU cores, ~4 s for 15 epochs): multi-hot reached 0.987 validation
accuracy by epoch 4, tf-idf 0.934 after 15 (idf lowers the frequent cue words), and
scikit-learn's TF-IDF + LogisticRegression 0.944; without L2, both stayed near 0.66
(Adam's per-weight steps fit the rare filler words).

Words only, no character n-grams: measured Keras-native (`TextVectorization(split=
"character", ngrams=(2, 3, 4, 5))` ids, across words or within each word as in
scikit-learn's "char_wb", bagged by this space with `ngrams=1`) against words, with the
linear starting points, 15 epochs, 2 seeds (`python -m benchmarks.text_tokens --seeds
0,1`, 2026-12-01, 2 shared CPU cores), they never paid: on the generated `spam` (600 test
messages, 2 % label noise) every variant scored 0.9767 to 0.9833 and the validation
accuracies were identical (char_wb's mean 0.9808 against 0.9796 for words is under one
message); on `reviews` chars scored 0.52 to 0.61 against 0.64 to 0.70 for words (five
characters cannot span "not very good"). Chars ran on 8 to 32 times longer sequences
and trained up to 2.3 times as long. A tokenization choice would also be sampled before
the family (the engine encodes a trial's texts before it builds the model), so rnn and
transformer trials would carry it too.
"""

from __future__ import annotations

from typing import Any

import keras

from automl.spaces import HyperParameters, ModelSpec
from automl.spaces.blocks import choose_dropout, choose_regularizer, output_head
from automl.spaces.layers import NgramBag
from automl.spaces.training import choose_training, points_for
from search_spaces import SPACES

DESCRIPTION = "bag of word n-grams (tf-idf or multi-hot) with a linear or shallow MLP head"
KINDS = ("text",)
TASKS = ("classification", "regression")
ORDER = 35

OUTPUTS = ("tf_idf", "multi_hot")
HEADS = ("linear", "mlp")
HIDDEN_UNITS = (64, 128, 256)
HIDDEN_ACTIVATIONS = ("relu", "gelu")
# A model this shallow trains well with the Adam family; plain SGD needs far more epochs.
OPTIMIZERS = ("adam", "adamw", "nadam", "rmsprop")
LEARNING_RATE = (3e-4, 5e-2)

LINEAR_MULTI_HOT = {
    "ngrams": 2,
    "output": "multi_hot",
    "normalize": True,
    "input_dropout": 0.0,
    "head": "linear",
    "regularizer": "l2",
    "regularizer_strength": 1e-4,
    "label_smoothing": 0.0,
    "batch_size": 32,
    "optimizer": "adam",
    "learning_rate": 3e-2,
    "schedule": "constant",
}
LINEAR_TF_IDF = {**LINEAR_MULTI_HOT, "output": "tf_idf"}

STARTING_POINTS = [LINEAR_MULTI_HOT, LINEAR_TF_IDF]


def starting_points(spec: ModelSpec) -> list[dict[str, Any]]:
    """`STARTING_POINTS` (the label smoothing only for classification)."""
    return points_for(spec, KINDS, STARTING_POINTS)


def build(hp: HyperParameters, spec: ModelSpec) -> keras.Model:
    """Build and compile one bag-of-n-grams model.

    Varies the n-gram order (words, or words and word pairs), the bag's values (tf-idf or
    multi-hot), unit-length scaling, dropout on the bag, the head (linear, or one hidden
    layer: its units, activation and dropout), L1/L2 on the first kernel, label
    smoothing, optimizer, learning rate, schedule and batch size.

    Raises:
        UsageError: For data kinds other than text.
    """
    SPACES["ngrams"].require_kind(spec)
    ngrams = hp.Choice("ngrams", [1, 2])
    output = hp.Choice("output", list(OUTPUTS))
    normalize = hp.Boolean("normalize", default=True)
    input_dropout = choose_dropout(hp, name="input_dropout")
    head = hp.Choice("head", list(HEADS))
    with hp.conditional_scope("head", "mlp"):
        units = hp.Choice("units", list(HIDDEN_UNITS))
        activation = hp.Choice("activation", list(HIDDEN_ACTIVATIONS))
        dropout = choose_dropout(hp)
    regularizer = choose_regularizer(hp)
    compile_model = choose_training(hp, spec, choices=OPTIMIZERS, learning_rate=LEARNING_RATE)

    table = spec.ngram_table(int(ngrams))
    inputs, x = spec.inputs()
    bag = NgramBag(
        table.vocab_size,
        len(table.bigram_keys),
        output_mode=output,
        normalize=normalize,
        name="ngram_bag",
    )
    x = bag(x)
    bag.set_table(table.bigram_keys, table.idf)
    if input_dropout > 0:
        x = keras.layers.Dropout(input_dropout, name="bag_dropout")(x)
    if head == "mlp":
        x = keras.layers.Dense(
            units, activation=activation, kernel_regularizer=regularizer, name="hidden"
        )(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name="hidden_dropout")(x)
        regularizer = None  # L1/L2 acts on the kernel that reads the bag
    model = keras.Model(inputs, output_head(x, spec, regularizer=regularizer), name="ngrams")
    return compile_model(model)
