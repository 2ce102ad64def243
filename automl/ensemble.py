"""Ensemble selection (Caruana et al., 2004) and the one Keras model that averages the
members it chose.

Selection is greedy, with replacement, on validation predictions: start from the best
model, then add whichever member (again, maybe) improves the averaged predictions most,
until none does or `ROUNDS` members were added. A member's weight is how often it was
chosen. The result is one functional model of Keras' own layers (each member scaled by
its weight with `Rescaling`, then `Add`), so it saves to one `.keras` file and loads in
safe mode like any single model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from automl._model_input import model_input

if TYPE_CHECKING:
    import keras

ROUNDS = 20  # members added at most (auto-sklearn's default is 50 over many more models)


def select(
    predictions: Sequence[np.ndarray],
    score: Callable[[np.ndarray], float],
    is_better: Callable[[float, float | None], bool],
) -> tuple[list[float], float]:
    """Greedy ensemble selection with replacement.

    Args:
        predictions: Each candidate's validation predictions, the best candidate first.
        score: The validation score of averaged predictions.
        is_better: Whether a score is strictly better than another (or than None).

    Returns:
        Each candidate's weight (summing to 1; 0 for those never chosen) and the
        ensemble's validation score.
    """
    counts = [0] * len(predictions)
    counts[0] = 1
    total = np.asarray(predictions[0], dtype="float64").copy()
    best = score(total)
    for _ in range(ROUNDS - 1):
        added = sum(counts) + 1
        tried = [score((total + p) / added) for p in predictions]
        pick = max(range(len(tried)), key=lambda i: _rank(tried[i], is_better, tried))
        if not is_better(tried[pick], best):
            break
        counts[pick] += 1
        total += predictions[pick]
        best = tried[pick]
    return [c / sum(counts) for c in counts], best


def _rank(value: float, is_better: Callable[[float, float | None], bool], all_: list[float]) -> int:
    """How many of `all_` `value` beats: the best has the highest rank."""
    return sum(1 for other in all_ if is_better(value, other))


def average_model(members: Sequence[keras.Model], weights: Sequence[float]) -> keras.Model:
    """One model whose output is the weighted sum of the members' outputs on the same
    raw input (members with weight 0 are left out).

    The members must take the same input (the same columns, shape and dtype); each is
    renamed `member_<i>` so that their names cannot clash inside the ensemble.
    """
    import keras

    chosen = [(m, w) for m, w in zip(members, weights, strict=True) if w > 0]
    inputs = _fresh_inputs(chosen[0][0])
    outputs = []
    for index, (member, weight) in enumerate(chosen):
        member.name = f"member_{index}"
        scaled = keras.layers.Rescaling(float(weight), name=f"weight_{index}")
        outputs.append(scaled(member(inputs)))
    summed = outputs[0] if len(outputs) == 1 else keras.layers.Add(name="ensemble")(outputs)
    return keras.Model(inputs, summed, name="ensemble")


def same_input(model: keras.Model, other: keras.Model) -> bool:
    """Whether two models take the same raw input (structure, shapes, dtypes)."""
    return _signature(model_input(model)) == _signature(model_input(other))


def _signature(structure: Any) -> Any:
    if isinstance(structure, dict):
        return {key: _signature(value) for key, value in sorted(structure.items())}
    if isinstance(structure, list | tuple):
        return [_signature(value) for value in structure]
    return (tuple(structure.shape[1:]), str(structure.dtype))


def _fresh_inputs(model: keras.Model) -> Any:
    """New `keras.Input`s shaped like `model`'s (a dict of columns keeps its keys)."""
    import keras

    def fresh(tensor: Any, name: str) -> Any:
        return keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype, name=name)

    structure = model_input(model)
    if isinstance(structure, dict):  # the input layers' own names (columns sanitized)
        return {key: fresh(tensor, tensor.name) for key, tensor in structure.items()}
    if isinstance(structure, list | tuple):
        return [fresh(tensor, tensor.name) for tensor in structure]
    return fresh(structure, structure.name)
