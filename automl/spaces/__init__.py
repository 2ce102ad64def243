"""Search spaces: the table of built-in spaces, the `hp` API, and space loading.

A space is a function `build(hp, spec) -> keras.Model` (compiled) in a module of the
top-level `search_spaces` package; it may also define `STARTING_POINTS`, a list of param
dicts enqueued as the first trials of every new study. The table below imports nothing
heavy.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

from automl.spaces._hp import HyperParameters
from automl.spaces._spec import ModelSpec


@dataclasses.dataclass(frozen=True)
class SpaceInfo:
    """One row of the built-in space table."""

    name: str
    description: str
    kinds: tuple[str, ...]
    module: str


SPACES: dict[str, SpaceInfo] = {
    info.name: info
    for info in [
        SpaceInfo(
            "mlp",
            "dense networks: depth, width, activation, init, L1/L2, dropout, batch norm, optimizer",
            ("vector", "image"),
            "search_spaces.mlp",
        ),
        SpaceInfo(
            "cnn",
            "convolution stacks: stages, filters, kernels, pooling, batch norm, "
            "augmentation, optimizer; starts from the tutorial CNN",
            ("image",),
            "search_spaces.cnn",
        ),
    ]
}


def load_space(name: str) -> tuple[Callable[..., Any], list[dict[str, Any]]]:
    """Import a built-in space.

    Returns:
        Its `build(hp, spec)` function and its starting points (maybe empty).
    """
    module: ModuleType = importlib.import_module(SPACES[name].module)
    return module.build, list(getattr(module, "STARTING_POINTS", []))


__all__ = ["SPACES", "HyperParameters", "ModelSpec", "SpaceInfo", "load_space"]
