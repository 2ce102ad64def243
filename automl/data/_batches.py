"""In-memory arrays as a tf.data pipeline for `fit`, with tf.data's autotuning off.

Keras feeds NumPy arrays to its TensorFlow backend through a tf.data pipeline whose
parallelism and prefetching are autotuned. Autotuning runs a model thread per iterator
that sleeps between its optimizations, for periods that double up to a minute, and on
TensorFlow 2.21 ending the iterator can wait out that sleep: gdb shows the main thread
in `~RootDataset::Iterator` and the model thread in `Model::OptimizeLoop`, with the
process idle. Keras ends the training iterator at every epoch, so a 40 s CIFAR-10 epoch
now and then idled 24-62 s before its first batch, and the search's long training at
165 T averaged 70 s per epoch where the same model trained alone took 40 s
(`benchmarks/epoch_gaps.py`). The pipeline here is Keras' own (shuffled indices, one
gather per batch) with a fixed parallelism, so it has no model thread.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PARALLEL_GATHERS = 2  # a gather of 256 images takes about a millisecond
PREFETCH = 2  # batches ready ahead of the train step


def in_memory_batches(x: Any, y: Any | None, batch_size: int, *, shuffle: bool) -> Any | None:
    """`(x, y)` as a `tf.data.Dataset` of batches with autotuning off, reshuffled every
    epoch when `shuffle`; None where Keras' own handling should stay.

    Args:
        x: The inputs: an array, or a dict or list of arrays (one per model input).
        y: The targets, one row per example; None for inputs alone (batches structured as
            Keras' own feed has them, for `predict`).
        batch_size: Examples per batch; the last batch holds what is left.
        shuffle: Draw a new order every epoch (training), or keep the rows' order.

    Returns:
        The dataset on the TensorFlow backend for numeric arrays; None for another
        backend (which does not use tf.data) or for text and object arrays.
    """
    import keras

    arrays = [*_leaves(x), *([] if y is None else [y])]
    if keras.backend.backend() != "tensorflow" or not all(_numeric(a) for a in arrays):
        return None
    import tensorflow as tf

    rows = len(arrays[0])
    order = tf.data.Dataset.range(rows)
    if shuffle:  # only indices are shuffled: a buffer of all of them costs 8 bytes a row
        order = order.shuffle(rows, reshuffle_each_iteration=True)
    both = _inputs_alone(x) if y is None else (_as_tensors(x), _tensor(y))
    data = tf.data.Dataset.from_tensors(both).repeat()

    def gather(indices: Any, both: Any) -> Any:
        return tf.nest.map_structure(lambda a: tf.gather(a, indices, axis=0), both)

    batches = tf.data.Dataset.zip((order.batch(batch_size), data))
    batches = batches.map(gather, num_parallel_calls=PARALLEL_GATHERS).prefetch(PREFETCH)
    options = tf.data.Options()
    options.autotune.enabled = False
    # As Keras: no graph rewrites, whose serialization costs more than they save here.
    options.experimental_optimization.apply_default_optimizations = False
    return batches.with_options(options)


def fit_inputs(x: Any, y: Any, batch_size: int, *, shuffle: bool) -> dict[str, Any]:
    """Keyword arguments for `fit`: `x` as `in_memory_batches` where it can be, else the
    arrays with their batch size for Keras to batch (and shuffle, when `shuffle`)."""
    batches = in_memory_batches(x, y, batch_size, shuffle=shuffle)
    if batches is None:
        return {"x": x, "y": y, "batch_size": batch_size, "shuffle": shuffle}
    # Keras warns when told to shuffle a dataset: its batches come shuffled.
    return {"x": batches, "y": None, "batch_size": None, "shuffle": False}


def evaluate_inputs(x: Any, y: Any, batch_size: int) -> dict[str, Any]:
    """Keyword arguments for `evaluate`, as `fit_inputs` (in order)."""
    inputs = fit_inputs(x, y, batch_size, shuffle=False)
    del inputs["shuffle"]
    return inputs


def predict_inputs(x: Any, batch_size: int) -> dict[str, Any]:
    """Keyword arguments for `predict`: `x` as `in_memory_batches` in order, where it can
    be; a predict's iterator ends as a training epoch's does, so Keras' autotuned feed
    could stall it the same way."""
    batches = in_memory_batches(x, None, batch_size, shuffle=False)
    if batches is None:
        return {"x": x, "batch_size": batch_size}
    return {"x": batches}


def fit_data(
    train: tuple[Any, Any], validation: tuple[Any, Any], batch_size: int
) -> dict[str, Any]:
    """Keyword arguments for `fit` that trains on `train` and validates on `validation`
    ((x, y) pairs): both as `in_memory_batches`, or both as arrays for Keras to batch
    where either cannot be (so they are never fed two ways in one fit)."""
    batches = in_memory_batches(*train, batch_size, shuffle=True)
    validation_batches = in_memory_batches(*validation, batch_size, shuffle=False)
    if batches is None or validation_batches is None:
        x, y = train
        return {"x": x, "y": y, "batch_size": batch_size, "validation_data": validation}
    # Keras warns when told to shuffle a dataset: its batches come shuffled.
    return {"x": batches, "shuffle": False, "validation_data": validation_batches}


def _inputs_alone(x: Any) -> Any:
    """Inputs without targets, structured as Keras' own array feed has them: a list or
    tuple of inputs as a 1-tuple (Keras would read a bare pair as (x, y)), an array or a
    dict bare. The structure matters beyond this feed: `predict_on_batch` later calls
    the same traced function with `(x,)`, and a matching structure would make TensorFlow
    relax the two traces' shapes into one, of unknown rank where a table's 1-D columns
    met the (1, 1) columns of a one-row example, which the model's inputs then reject."""
    tensors = _as_tensors(x)
    return (tensors,) if isinstance(x, list | tuple) else tensors


def _leaves(x: Any) -> list[Any]:
    if isinstance(x, dict):
        return list(x.values())
    return list(x) if isinstance(x, list | tuple) else [x]


def _numeric(array: Any) -> bool:
    return isinstance(array, np.ndarray) and (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    )


def _as_tensors(x: Any) -> Any:
    if isinstance(x, dict):
        return {name: _tensor(a) for name, a in x.items()}
    if isinstance(x, list | tuple):
        return tuple(_tensor(a) for a in x)
    return _tensor(x)


def _tensor(array: np.ndarray) -> Any:
    """The array as a tensor; floats in Keras' float type, as Keras' own pipeline has them
    (a table's float64 columns would otherwise reach a float32 model as float64)."""
    import keras
    import tensorflow as tf

    if np.issubdtype(array.dtype, np.floating):
        return tf.constant(array, dtype=keras.backend.floatx())
    return tf.constant(array)
