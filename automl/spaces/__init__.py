"""Search spaces: the table of built-in spaces, the `hp` API, and space resolution.

A built-in space is a module of the top-level `search_spaces` package with a function
`build(hp, spec) -> keras.Model` (compiled) and, optionally, `STARTING_POINTS`: param
dicts enqueued as the first trials of every new study. User spaces come as
`build(hp)` / `build(hp, spec)` functions, keras-tuner `HyperModel`s, `file.py:name` or
`package.module:name` references, or TOML/YAML files that narrow a space; `resolve_space`
turns any of them into one `Space`. The table below imports nothing heavy.
"""

from __future__ import annotations

import dataclasses

from automl._errors import UsageError
from automl.spaces._hp import HyperParameters
from automl.spaces._resolve import Space, resolve_space
from automl.spaces._spec import ModelSpec

_BOTH = ("classification", "regression")


@dataclasses.dataclass(frozen=True)
class SpaceInfo:
    """One row of the built-in space table.

    Attributes:
        name: What `--space` takes.
        description: One line for `automl spaces`.
        kinds: Data kinds it builds for (image, vector, sequence, text).
        tasks: Tasks its head fits.
        module: The module holding `build`.
    """

    name: str
    description: str
    kinds: tuple[str, ...]
    tasks: tuple[str, ...]
    module: str

    def require_kind(self, spec: ModelSpec) -> None:
        """Refuse data this space does not build for (for direct calls of its build).

        Raises:
            UsageError: Naming the kinds it builds for.
        """
        if spec.kind not in self.kinds:
            raise UsageError(
                f"the {self.name} space builds for {'/'.join(self.kinds)} data, but got "
                f"{spec.kind} data; pick another space (`automl spaces`)."
            )


SPACES: dict[str, SpaceInfo] = {
    info.name: info
    for info in [
        SpaceInfo(
            "auto",
            "a top-level choice among the spaces that fit the data; the default",
            ("image", "vector", "sequence", "text"),
            _BOTH,
            "search_spaces.auto",
        ),
        SpaceInfo(
            "mlp",
            "dense networks: depth, width, activation, init, L1/L2, dropout, batch/layer norm",
            ("vector", "image", "sequence", "text"),
            _BOTH,
            "search_spaces.mlp",
        ),
        SpaceInfo(
            "cnn",
            "convolution stacks: stages, filters, kernels, pooling, batch norm, "
            "augmentation; starts from the tutorial CNN",
            ("image",),
            _BOTH,
            "search_spaces.cnn",
        ),
        SpaceInfo(
            "resnet",
            "residual CNNs: stages, blocks per stage, width multiplier, basic or bottleneck",
            ("image",),
            _BOTH,
            "search_spaces.resnet",
        ),
        SpaceInfo(
            "rnn",
            "LSTM, GRU and SimpleRNN, stacked or bidirectional (images read row by row)",
            ("sequence", "text", "image"),
            _BOTH,
            "search_spaces.rnn",
        ),
        SpaceInfo(
            "transformer",
            "attention encoders: heads, key dim, feed-forward width, layers, positions; "
            "a ViT-style patch transformer for images",
            ("sequence", "text", "image"),
            _BOTH,
            "search_spaces.transformer",
        ),
        SpaceInfo(
            "transfer",
            "a keras.applications backbone with a new head; frozen or fine-tuned layers",
            ("image",),
            _BOTH,
            "search_spaces.transfer",
        ),
    ]
}

__all__ = [
    "SPACES",
    "HyperParameters",
    "ModelSpec",
    "Space",
    "SpaceInfo",
    "resolve_space",
]
