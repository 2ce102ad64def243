"""Turn whatever names a space into one `Space`.

Accepted: a reference to a function or `keras_tuner.HyperModel` (`path/to/file.py:build`,
`package.module:build`), the object itself (a `build(hp)` or `build(hp, spec)` function, a
HyperModel instance or class), a TOML/YAML file that fixes or narrows another space's
parameters, or a plain name (`cnn`), which only a caller's `builtin` lookup can resolve:
this layer knows no built-in spaces, the catalogue above it does and plugs itself in.
Mistakes raise `UsageError` in one line.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl._errors import UsageError

if TYPE_CHECKING:
    from automl.spaces._builtin import SpaceInfo
    from automl.spaces._hp import HyperParameters
    from automl.spaces._spec import ModelSpec

CONFIG_SUFFIXES = (".toml", ".yaml", ".yml")


@dataclasses.dataclass
class Space:
    """A resolved search space.

    Attributes:
        label: How the study records it (`cnn`, `spaces.py:build`, `my.module:Model`).
        build: `build(hp, spec) -> keras.Model`, compiled or not.
        points: Returns the starting points to enqueue for a spec.
        overrides: Parameter name -> fixed value, list of choices or {"min", "max"}.
        fit: A HyperModel's own `fit(hp, model, *args, **kwargs)`, when it overrides one.
        info: The built-in table row (kinds and tasks it fits), None for user spaces.
        grow: `grow(params, spec)` -> a wider point of the same configuration for a long
            training that has the time for it, or None (see `grown`).
    """

    label: str
    build: Callable[[HyperParameters, ModelSpec], Any]
    points: Callable[[ModelSpec], list[dict[str, Any]]] = lambda spec: []
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    fit: Callable[..., Any] | None = None
    info: SpaceInfo | None = None
    grow: Callable[[dict[str, Any], ModelSpec], dict[str, Any] | None] | None = None

    def grown(self, params: dict[str, Any], spec: ModelSpec) -> dict[str, Any] | None:
        """The space's wider point of `params` (`grow`), when it has one that differs
        and agrees with the overrides; else None. `grow` sees the values the overrides
        fix too (they are no trial params), and they are left out of what it returns."""
        if self.grow is None:
            return None
        fixed = {k: v for k, v in self.overrides.items() if not isinstance(v, list | dict)}
        wider = self.grow({**fixed, **params}, spec)
        if not wider:
            return None
        if any(not _allowed(wider[k], v) for k, v in self.overrides.items() if k in wider):
            return None
        wider = {k: v for k, v in wider.items() if k in params or k not in fixed}
        return wider if wider != params else None

    def starting_points(self, spec: ModelSpec) -> list[dict[str, Any]]:
        """Starting points that agree with the overrides (the others are dropped)."""
        return [
            point
            for point in self.points(spec)
            if all(_allowed(point[k], v) for k, v in self.overrides.items() if k in point)
        ]

    def check_fits(self, spec: ModelSpec, dataset: str) -> None:
        """Refuse a built-in space that cannot build for this kind of data."""
        if self.info is not None and spec.kind not in self.info.kinds:
            raise UsageError(
                f"space {self.info.name!r} builds for {'/'.join(self.info.kinds)} data, but "
                f"{dataset!r} is {spec.kind} data; pick another {{space}} (`automl spaces`)."
            )


def resolve_space(value: Any, *, builtin: Callable[[str], Space] | None = None) -> Space:
    """Resolve a space given by name, reference, object or config file.

    Args:
        value: A `Space`, a name, a reference, a config file path, or a function or
            HyperModel.
        builtin: Resolves a plain name (and a config file's base space given by name);
            it raises `UsageError` for names it does not know. Without it, names are
            refused.

    Raises:
        UsageError: When it names nothing that exists or is not a usable space.
    """
    if isinstance(value, Space):
        return value
    if isinstance(value, str | os.PathLike):
        text = os.fspath(value)
        if not _is_reference(text):
            if builtin is None:
                raise UsageError(_unknown_space(text, builtins=()))
            return builtin(text)
        check_space_name(text)
        if text.endswith(CONFIG_SUFFIXES):
            return _from_config(Path(text), builtin=builtin)
        target, _, attr = text.rpartition(":")
        return _from_object(_import_attr(target, attr), label=text)
    return _from_object(value, label=None)


def check_space_name(text: str, *, builtins: Collection[str] = ()) -> None:
    """The cheap check (no import): one of `builtins`, or a reference or config whose file
    exists. `resolve_space` does the rest.

    Raises:
        UsageError: Naming the forms a space may take, or the missing file.
    """
    if text in builtins:
        return
    if not _is_reference(text):
        raise UsageError(_unknown_space(text, builtins))
    path = space_file(text)
    if path is not None and not Path(path).is_file():
        raise UsageError(f"space file {path} does not exist; check the path.")


def _is_reference(text: str) -> bool:
    """A config file or a `target:name` reference rather than a plain name."""
    return text.endswith(CONFIG_SUFFIXES) or ":" in text


def _unknown_space(text: str, builtins: Collection[str]) -> str:
    named = f"a built-in name ({', '.join(builtins)}), " if builtins else ""
    return (
        f"unknown space {text!r}; give {named}file.py:function, package.module:function, "
        f"or a .toml/.yaml space config."
    )


def space_file(text: str) -> str | None:
    """The file a space config or `file.py:function` reference names (None otherwise)."""
    if text.endswith(CONFIG_SUFFIXES):
        return text
    target = text.rpartition(":")[0]
    return target if _is_file_target(target) else None


def _is_file_target(target: str) -> bool:
    """`path/to/file.py` (a file) rather than `package.module` (an import)."""
    return target.endswith(".py") or os.sep in target or "/" in target


def _from_object(obj: Any, label: str | None) -> Space:
    """A user's function or HyperModel as a `Space`."""
    base = _hypermodel_base(obj if inspect.isclass(obj) else type(obj))
    if base is not None:
        if inspect.isclass(obj):
            try:
                obj = obj()
            except TypeError as exc:
                raise UsageError(
                    f"HyperModel {obj.__name__} needs constructor arguments ({exc}); pass an "
                    f"instance to search() instead."
                ) from None
        own_fit = type(obj).fit is not base.fit
        name = label or f"{type(obj).__module__}:{type(obj).__qualname__}"
        hypermodel = obj  # keras-tuner wraps `build` as build(hp, *args): call it with hp only
        return Space(
            label=name,
            build=lambda hp, spec: hypermodel.build(hp),
            fit=obj.fit if own_fit else None,
        )
    if not callable(obj):
        raise UsageError(
            f"a space must be a build(hp) function or a keras_tuner.HyperModel, but got "
            f"{type(obj).__name__}."
        )
    name = label or f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', obj)}"
    return Space(label=name, build=_two_args(obj))


def _two_args(build: Callable[..., Any]) -> Callable[[Any, Any], Any]:
    """Accept keras-tuner's `build(hp)` as well as our `build(hp, spec)`."""
    try:
        params = list(inspect.signature(build).parameters.values())
    except (TypeError, ValueError):
        return lambda hp, spec: build(hp)
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params):
        return build
    return lambda hp, spec: build(hp)


def _hypermodel_base(cls: type) -> type | None:
    """keras_tuner's HyperModel class among `cls`'s bases (without importing keras_tuner)."""
    for klass in getattr(cls, "__mro__", ()):
        if klass.__name__ == "HyperModel" and klass.__module__.startswith("keras_tuner"):
            return klass
    return None


def _import_attr(target: str, attr: str) -> Any:
    """Import `attr` from a .py file path or a dotted module name."""
    if _is_file_target(target):
        path = Path(target)
        module_name = f"automl_user_space_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise UsageError(f"cannot import space file {target}; it must be a .py file.")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # so pickling and Keras registration find it
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise UsageError(
                f"cannot import space file {target}: {type(exc).__name__}: {exc}"
            ) from None
    else:
        if os.getcwd() not in sys.path:  # `package.module` relative to where automl runs
            sys.path.append(os.getcwd())
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise UsageError(f"cannot import space module {target!r}: {exc}") from None
    if not hasattr(module, attr):
        defined = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise UsageError(
            f"{target} has no {attr!r}; it defines: {', '.join(defined) or 'nothing callable'}."
        )
    return getattr(module, attr)


def _from_config(path: Path, *, builtin: Callable[[str], Space] | None) -> Space:
    """A TOML/YAML file: `space = "<name or reference>"` and a `params` table."""
    content = _read_config(path)
    base = content.get("space")
    if not isinstance(base, str) or base.endswith(CONFIG_SUFFIXES):
        raise UsageError(
            f'space config {path} must say which space it narrows, e.g. space = "cnn" '
            f"(a built-in name or file.py:function)."
        )
    unknown = set(content) - {"space", "params"}
    if unknown:
        raise UsageError(
            f"space config {path}: unknown key(s) {', '.join(sorted(unknown))}; only "
            f"'space' and 'params' are read."
        )
    params = content.get("params") or {}
    if not isinstance(params, dict):
        raise UsageError(f"space config {path}: 'params' must be a table of name = value.")
    for name, value in params.items():
        _check_override(path, name, value)
    space = resolve_space(base, builtin=builtin)
    return dataclasses.replace(space, label=str(path), overrides={**space.overrides, **params})


def _read_config(path: Path) -> dict[str, Any]:
    try:
        if path.suffix == ".toml":
            import tomllib

            return tomllib.loads(path.read_text())
        import yaml

        content = yaml.safe_load(path.read_text()) or {}
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"cannot read space config {path}: {reason}") from None
    if not isinstance(content, dict):
        raise UsageError(f"space config {path} must be a mapping with 'space' and 'params'.")
    return content


def _check_override(path: Path, name: str, value: Any) -> None:
    """One `params` entry: a value, a non-empty list, or a {min, max} table."""
    if isinstance(value, list) and value:
        return
    if isinstance(value, dict) and value and set(value) <= {"min", "max"}:
        return
    if isinstance(value, str | int | float | bool):
        return
    raise UsageError(
        f"space config {path}: params.{name} must be a value (fixes it), a non-empty list "
        f"(narrows the choices) or {{min = .., max = ..}} (narrows the range), "
        f"but got {value!r}."
    )


def _allowed(value: Any, override: Any) -> bool:
    """Whether a starting point's value survives an override."""
    if isinstance(override, list):
        return value in override
    if isinstance(override, dict):
        return override.get("min", value) <= value <= override.get("max", value)
    return value == override
