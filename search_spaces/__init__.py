"""The built-in search spaces: one module per space, found by listing this package.

Each module follows the contract documented once, in `automl.spaces.BuiltinSpace`; adding
a space is adding one such module here (a name starting with `_` is a helper, not a space).

`SPACES` is read from the modules' source, not by importing them (they import Keras, which
costs seconds), so listing spaces and checking a space name stay cheap; a module is
imported when its space is resolved. `resolve_space` resolves everything else through
`automl.spaces`, with this catalogue's name lookup plugged in.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any

from automl import spaces
from automl.spaces import Space, SpaceInfo, builtin_space, read_space_info


def _discover() -> dict[str, SpaceInfo]:
    """Every space module's row, in listing order."""
    folder = Path(__file__).parent
    infos = [
        read_space_info(folder / f"{found.name}.py", module=f"{__name__}.{found.name}")
        for found in pkgutil.iter_modules([str(folder)])
        if not found.ispkg and not found.name.startswith("_")
    ]
    return {info.name: info for info in sorted(infos, key=lambda i: (i.order, i.name))}


SPACES: dict[str, SpaceInfo] = _discover()


def check_space_name(text: str) -> None:
    """The cheap check (no import): a built-in name, or a reference or config whose file
    exists. `resolve_space` does the rest.

    Raises:
        UsageError: Naming the forms a space may take, or the missing file.
    """
    spaces.check_space_name(text, builtins=SPACES)


def resolve_space(value: Any) -> Space:
    """Resolve a built-in name, reference, object or config file to a `Space`.

    Raises:
        UsageError: When it names nothing that exists or is not a usable space.
    """
    return spaces.resolve_space(value, builtin=_builtin)


def _builtin(name: str) -> Space:
    check_space_name(name)
    info = SPACES[name]
    return builtin_space(importlib.import_module(info.module), info)


__all__ = ["SPACES", "check_space_name", "resolve_space"]
