"""Search spaces: the `hp` API, the building blocks, and resolving a space.

User spaces come as `build(hp)` / `build(hp, spec)` functions, keras-tuner `HyperModel`s,
`file.py:name` or `package.module:name` references, or TOML/YAML files that narrow a
space; `resolve_space` turns any of them into one `Space`. Built-in spaces are not known
here: a catalogue above this layer holds them, each module following the `BuiltinSpace`
contract, and passes its name lookup to `resolve_space(value, builtin=...)`.
`SpaceInfo` and `read_space_info` give it its table without importing a space's Keras
code. Importing this package imports nothing heavy.
"""

from __future__ import annotations

from automl.spaces._builtin import BuiltinSpace, SpaceInfo, builtin_space, read_space_info
from automl.spaces._hp import HyperParameters
from automl.spaces._resolve import Space, check_space_name, resolve_space
from automl.spaces._spec import ModelSpec

__all__ = [
    "BuiltinSpace",
    "HyperParameters",
    "ModelSpec",
    "Space",
    "SpaceInfo",
    "builtin_space",
    "check_space_name",
    "read_space_info",
    "resolve_space",
]
