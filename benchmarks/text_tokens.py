"""Word n-grams against character n-grams in the `ngrams` space, one fixed configuration.

    python -m benchmarks.text_tokens [--seeds 0,1] [--tokens words,chars,chars_wb] [--json PATH]

Issue #20 asks for character n-grams "if a Keras-native way measures well". This measures
it on the generated `reviews` and `spam` texts of `benchmarks.tables_text` (3,000 rows,
data seed 0; the seed varies the validation split and the initial weights), with the
`ngrams` space's linear starting points (`LINEAR_TF_IDF`, `LINEAR_MULTI_HOT`: unit-length
bag, L2 1e-4, Adam 3e-2, batch 32) trained for the same epochs, the weights of the best
validation epoch kept, and scored on the study's test split. Only the tokens differ:

- `words`: the study's `TextEncoder` ids (every training word, the longest length
  choice), bagged as words and word pairs (`ngrams=2`);
- `chars`: `TextVectorization(split="character", ngrams=(2, 3, 4, 5))` adapted on the
  training texts (20,000 n-grams at most), so ids run across word boundaries like
  scikit-learn's `analyzer="char"`; the sequence is the 95th percentile of the training
  texts' n-gram counts, rounded up to a power of 2, at most 1,024; bagged with `ngrams=1`;
- `chars_wb`: the same n-grams within each " word " of the vocabulary (scikit-learn's
  `analyzer="char_wb"`, what the char TF-IDF + LinearSVC baseline uses), computed from
  the word ids, as a model could do from a word-to-n-grams table.

Trials run on one thread (`TF_NUM_INTRAOP_THREADS=1` is set before TensorFlow loads).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ORDERS = (2, 3, 4, 5)
MAX_CHAR_NGRAMS = 20_000
MAX_CHAR_LENGTH = 1_024
EPOCHS = 15


def word_ids(data: Any) -> tuple[list[np.ndarray], int]:
    """Train, validation and test ids of the study's default word choice, and the vocabulary
    size."""
    encoded = data.encode(None)
    vectorizer = data.encoder.vectorizer(*data.encoder.choose(None))
    test = np.asarray(vectorizer(data.x_test)).astype("int32")
    return [encoded.x_train, encoded.x_val, test], int(encoded.vocab_size)


def char_ids(data: Any) -> tuple[list[np.ndarray], int]:
    """Ids of the character n-grams of the raw texts (across words), and their count."""
    import keras

    adapter = keras.layers.TextVectorization(
        max_tokens=MAX_CHAR_NGRAMS + 2, split="character", ngrams=ORDERS
    )
    adapter.adapt(data.x_train, batch_size=1024)
    vocabulary = adapter.get_vocabulary()[2:]
    ragged = keras.layers.TextVectorization(
        vocabulary=vocabulary, split="character", ngrams=ORDERS, ragged=True
    )
    splits = [ragged(x).to_list() for x in (data.x_train, data.x_val, data.x_test)]
    return _padded(splits), len(vocabulary) + 2


def char_wb_ids(data: Any) -> tuple[list[np.ndarray], int]:
    """Ids of the character n-grams within each vocabulary word (" word "), per text."""
    import keras

    words, _ = word_ids(data)
    vocabulary = ["", "[UNK]", *data.encoder.vocabulary]
    padded = np.array([f" {w} " for w in vocabulary[2:]], dtype=object)
    seen = np.concatenate([row[row > 1] for row in words[0]])
    adapter = keras.layers.TextVectorization(
        max_tokens=MAX_CHAR_NGRAMS + 2, split="character", ngrams=ORDERS, standardize=None
    )
    adapter.adapt(padded[seen - 2], batch_size=1024)  # as often as the words occur
    ragged = keras.layers.TextVectorization(
        vocabulary=adapter.get_vocabulary()[2:],
        split="character",
        ngrams=ORDERS,
        standardize=None,
        ragged=True,
    )
    table = [[], [], *ragged(padded).to_list()]  # padding and [UNK] have none
    splits = [[[i for w in row if w > 1 for i in table[w]] for row in x] for x in words]
    return _padded(splits), len(adapter.get_vocabulary())


def _padded(splits: list[list[list[int]]]) -> list[np.ndarray]:
    """Right-padded int32 arrays, as long as the training split's 95th percentile
    (rounded up to a power of 2, at most `MAX_CHAR_LENGTH`)."""
    p95 = float(np.percentile([len(row) for row in splits[0]], 95))
    length = int(min(MAX_CHAR_LENGTH, 2 ** np.ceil(np.log2(max(p95, 2)))))
    arrays = []
    for rows in splits:
        array = np.zeros((len(rows), length), "int32")
        for k, row in enumerate(rows):
            array[k, : min(len(row), length)] = row[:length]
        arrays.append(array)
    return arrays


def train(
    data: Any, ids: list[np.ndarray], vocab: int, ngrams: int, output: str, seed: int
) -> dict[str, float]:
    """One fixed linear `ngrams` model: validation and test accuracy, seconds to train."""
    import keras
    from optuna.trial import FixedTrial

    from automl.spaces import HyperParameters, ModelSpec
    from search_spaces import ngrams as space

    point = {**space.LINEAR_MULTI_HOT, "ngrams": ngrams, "output": output}
    x_train, x_val, x_test = ids
    spec = ModelSpec(
        x_train.shape[1:],
        "text",
        "classification",
        data.num_classes,
        len(x_train),
        EPOCHS,
        vocab_size=vocab,
        token_sample=x_train,
    )
    keras.utils.set_random_seed(seed)
    hp = HyperParameters(FixedTrial(point))
    started = time.perf_counter()
    model = space.build(hp, spec)
    best = keras.callbacks.EarlyStopping(
        "val_accuracy", mode="max", patience=EPOCHS, restore_best_weights=True
    )
    model.fit(
        x_train,
        data.y_train,
        validation_data=(x_val, data.y_val),
        epochs=EPOCHS,
        callbacks=[best],
        verbose=0,
        **hp.fit_kwargs,
    )
    seconds = time.perf_counter() - started
    scores = [
        model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"]
        for x, y in ((x_val, data.y_val), (x_test, data.y_test))
    ]
    keras.utils.clear_session(free_memory=True)
    return {"val": round(scores[0], 4), "test": round(scores[1], 4), "train_s": round(seconds, 1)}


TOKENS = {"words": (word_ids, 2), "chars": (char_ids, 1), "chars_wb": (char_wb_ids, 1)}


def run(seeds: list[int], tokens: list[str]) -> list[dict[str, Any]]:
    """Every text set, seed, tokenization and bag output; one row each, printed as it ends."""
    from automl.data import load_data
    from benchmarks.tables_text import FULL_ROWS, TEXTS

    rows = []
    with tempfile.TemporaryDirectory(prefix="automl-text-tokens-") as folder:
        for case in TEXTS:
            path = Path(folder) / f"{case.name}.csv"
            case.make(FULL_ROWS, np.random.default_rng(0)).to_csv(path, index=False)
            for seed in seeds:
                data = load_data(
                    str(path), target=case.target, text_column=case.text_column, seed=seed
                )
                for name in tokens:
                    encode, ngrams = TOKENS[name]
                    started = time.perf_counter()
                    ids, vocab = encode(data)
                    encode_s = round(time.perf_counter() - started, 1)
                    for output in ("tf_idf", "multi_hot"):
                        row = {
                            "set": case.name,
                            "seed": seed,
                            "tokens": name,
                            "output": output,
                            "ids": vocab,
                            "length": ids[0].shape[1],
                            "encode_s": encode_s,
                        }
                        row.update(train(data, ids, vocab, ngrams, output, seed))
                        print(json.dumps(row), flush=True)
                        rows.append(row)
    return rows


def main() -> None:
    """Parse the flags, run, and write the rows as JSON when asked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1", help="comma-separated split/init seeds")
    parser.add_argument("--tokens", default="words,chars,chars_wb", help=", ".join(TOKENS))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    tokens = args.tokens.split(",")
    unknown = sorted(set(tokens) - set(TOKENS))
    if unknown:
        parser.error(f"unknown --tokens {unknown}; pick from {', '.join(TOKENS)}")
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    rows = run([int(s) for s in args.seeds.split(",")], tokens)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
