"""The contract a built-in space module follows, and reading its table row cheaply.

A built-in space is one module whose name is the space's name. It declares its metadata
beside its code as literal module constants, so that a catalogue can list every space
from the modules' source without importing them: they import Keras, and listing spaces
(`automl spaces`, checking a config's space name) must not pay its 7 s.

What lives here: `BuiltinSpace` (the contract), `SpaceInfo` (one catalogue row),
`read_space_info` (the cheap read) and `builtin_space` (an imported module as a `Space`).
Which modules exist, and the lookup by name, belong to the catalogue that holds them.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

from automl._errors import UsageError
from automl.spaces._hp import HyperParameters
from automl.spaces._resolve import Space
from automl.spaces._spec import KINDS, TASKS, ModelSpec


@runtime_checkable
class BuiltinSpace(Protocol):
    """What a built-in space module defines (the module's name is the space's name).

    Four literal constants, read from the source with `ast.literal_eval` before the
    module is ever imported, so each must be written out in place (no names, calls or
    imports on the right-hand side):

        DESCRIPTION = "dense networks: depth, width, ..."  # one line for `automl spaces`
        KINDS = ("vector", "image")                 # data kinds it builds for
        TASKS = ("classification", "regression")    # tasks its head fits
        ORDER = 10                                  # its row in `automl spaces`, ascending

    and up to three functions:

        def build(hp: HyperParameters, spec: ModelSpec) -> keras.Model: ...
        def starting_points(spec: ModelSpec) -> list[dict[str, Any]]: ...  # optional
        def grow(params: dict[str, Any], spec: ModelSpec) -> dict[str, Any] | None: ...  # optional

    `build` returns the model, compiled or not. `starting_points`, when defined, returns
    fresh param dicts to enqueue as the first trials of every new study on that data;
    without it a space has none. `grow`, when defined, returns a wider point of the same
    configuration (more filters, units), or None: a long training that has the time for
    enough of its epochs trains that instead (`automl.engine._grow`). Adding a built-in
    space is adding one such module.
    """

    DESCRIPTION: str
    KINDS: tuple[str, ...]
    TASKS: tuple[str, ...]
    ORDER: int

    def build(self, hp: HyperParameters, spec: ModelSpec) -> Any:
        """Build one model for the point `hp` samples."""
        ...


@dataclasses.dataclass(frozen=True)
class SpaceInfo:
    """One row of a catalogue of built-in spaces.

    Attributes:
        name: What `--space` takes.
        description: One line for `automl spaces`.
        kinds: Data kinds it builds for (image, vector, sequence, text).
        tasks: Tasks its head fits.
        module: The dotted name of the module holding `build`.
        order: Its place in listings (ascending; ties by name).
    """

    name: str
    description: str
    kinds: tuple[str, ...]
    tasks: tuple[str, ...]
    module: str
    order: int = 0

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


# Constant name -> (SpaceInfo field, the check its literal value must pass, what it must be).
_CONSTANTS: dict[str, tuple[str, Any, str]] = {
    "DESCRIPTION": ("description", lambda v: isinstance(v, str) and v, "a non-empty string"),
    "KINDS": ("kinds", lambda v: _names_in(v, KINDS), f"a tuple drawn from {KINDS}"),
    "TASKS": ("tasks", lambda v: _names_in(v, TASKS), f"a tuple drawn from {TASKS}"),
    "ORDER": ("order", lambda v: isinstance(v, int) and not isinstance(v, bool), "an int"),
}


def read_space_info(path: str | Path, *, module: str) -> SpaceInfo:
    """Read a built-in space module's row from its source, without importing it.

    Args:
        path: The module's `.py` file.
        module: Its dotted name; the last part is the space's name.

    Raises:
        TypeError: When the module breaks the `BuiltinSpace` contract (a missing or
            non-literal constant, a value of the wrong type, no `build` function).
    """
    path = Path(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    # Top-level statements only: a constant inside a function or an `if` is not declared.
    nodes = {
        node.targets[0].id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
    }
    nodes.update(
        (node.target.id, node.value)
        for node in tree.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value
    )
    fields: dict[str, Any] = {}
    for constant, (field, valid, expected) in _CONSTANTS.items():
        if constant not in nodes:
            raise TypeError(f"built-in space {path} must define {constant} ({expected}).")
        try:
            value = ast.literal_eval(nodes[constant])
        except ValueError:
            raise TypeError(
                f"built-in space {path}: {constant} must be a literal written in place "
                f"({expected}), but got `{ast.unparse(nodes[constant])}`."
            ) from None
        if not valid(value):
            raise TypeError(
                f"built-in space {path}: {constant} must be {expected}, but got {value!r}."
            )
        fields[field] = value
    if not any(isinstance(n, ast.FunctionDef) and n.name == "build" for n in tree.body):
        raise TypeError(f"built-in space {path} must define build(hp, spec).")
    return SpaceInfo(name=module.rpartition(".")[2], module=module, **fields)


def builtin_space(module: ModuleType, info: SpaceInfo) -> Space:
    """An imported built-in space module as a `Space`."""
    points = getattr(module, "starting_points", None)
    return Space(
        label=info.name,
        build=module.build,
        points=points if points is not None else lambda spec: [],
        info=info,
        grow=getattr(module, "grow", None),
    )


def _names_in(value: Any, allowed: tuple[str, ...]) -> bool:
    """A non-empty tuple of names, each one of `allowed`."""
    return isinstance(value, tuple) and bool(value) and all(v in allowed for v in value)
