"""`auto`: a conditional top-level choice among the spaces that fit the data.

The first parameter, `family`, picks a space; that space's parameters are then sampled
under its name (`cnn.stages`, `resnet.width_multiplier`, ...), so families never share a
distribution and Optuna's samplers learn each one separately. The starting points of the
chosen families are enqueued first, in family order: for images the fast recipe (the
CPU-sized speed-run CNN, the most accuracy per second measured here), then the tutorial
CNN, the modern CNN and the residual recipe.

Families by data kind: images search cnn, resnet and the ViT-style transformer (and
transfer when ImageNet weights are in the Keras cache: without them it could only train
from scratch, which it must not do unasked); vectors and tables search mlp and tabular
(an MLP on periodic embeddings of the features; its one starting point is the first
trial, mlp has none); sequences search rnn and transformer; text searches ngrams (a bag
of word n-grams, first: its trials take seconds and on short texts it is the bar the
others must clear), rnn and transformer. mlp is left out for images: on pixels it loses
to every convolutional family at the same cost.
"""

from __future__ import annotations

import importlib
from typing import Any

from automl.spaces import HyperParameters, ModelSpec
from search_spaces import SPACES, resolve_space

DESCRIPTION = "a top-level choice among the spaces that fit the data; the default"
KINDS = ("image", "vector", "sequence", "text")
TASKS = ("classification", "regression")
ORDER = 0

FAMILIES = {
    "image": ("cnn", "resnet", "transformer"),
    "vector": ("mlp", "tabular"),
    "sequence": ("rnn", "transformer"),
    "text": ("ngrams", "rnn", "transformer"),
}


def families(spec: ModelSpec) -> list[str]:
    """The spaces `auto` chooses among for this data."""
    names = list(FAMILIES[spec.kind])
    if spec.kind == "image" and _cached_backbones():
        names.append("transfer")
    return names


def _cached_backbones() -> list[str]:
    from search_spaces.transfer import backbones_available

    return backbones_available()


def build(hp: HyperParameters, spec: ModelSpec) -> Any:
    """Pick a family, then build that space's model with its names prefixed."""
    family = hp.Choice("family", families(spec))
    if family == "transfer":  # only backbones whose ImageNet weights are cached
        hp.overrides.setdefault("transfer.backbone", _cached_backbones())
    module = importlib.import_module(SPACES[family].module)
    with hp.name_scope(family):
        return module.build(hp, spec)


def grow(params: dict[str, Any], spec: ModelSpec) -> dict[str, Any] | None:
    """The chosen family's wider point (its own `grow`), its names prefixed again; None
    when that family does not grow."""
    family = params.get("family")
    space = resolve_space(family) if family in SPACES else None
    prefix = f"{family}."
    own = {k.removeprefix(prefix): v for k, v in params.items() if k.startswith(prefix)}
    wider = space.grown(own, spec) if space is not None else None
    if wider is None:
        return None
    return {**params, **{prefix + k: v for k, v in wider.items()}}


def starting_points(spec: ModelSpec) -> list[dict[str, Any]]:
    """Every chosen family's starting points, prefixed, in family order."""
    points = []
    for family in families(spec):
        for point in resolve_space(family).starting_points(spec):
            if family == "transfer" and point.get("backbone") not in _cached_backbones():
                continue
            points.append({"family": family, **{f"{family}.{k}": v for k, v in point.items()}})
    return points
