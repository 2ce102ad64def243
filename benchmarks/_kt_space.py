"""A built-in automl space as a keras-tuner `HyperModel`, so keras-tuner searches the
very same space as the engine.

automl's spaces are `build(hp, spec)` functions written against keras-tuner's `hp`
methods (`Int`, `Float`, `Choice`, `Boolean`, `Fixed`, `conditional_scope`,
`name_scope`), plus two automl attributes a space fills in: `fit_kwargs` (the sampled
batch size) and `callbacks` (e.g. ReduceLROnPlateau). `KtHp` forwards the methods to
keras-tuner's own `HyperParameters` and keeps the two attributes; `SpaceHyperModel.fit`
hands them to `model.fit`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import keras_tuner as kt


class KtHp:
    """keras-tuner's `hp` with automl's `fit_kwargs`, `callbacks` and `overrides`.

    keras-tuner returns None for a parameter whose conditional scope is inactive; automl's
    `hp` returns the default there, so inactive parameters come back as their default.
    """

    def __init__(self, hp: kt.HyperParameters) -> None:
        self.hp = hp
        self.fit_kwargs: dict[str, Any] = {}
        self.callbacks: list[Any] = []
        self.overrides: dict[str, Any] = {}

    def Int(self, name: str, min_value: int, max_value: int, **kwargs: Any) -> int:  # noqa: N802
        value = self.hp.Int(name, min_value, max_value, **kwargs)
        return kwargs.get("default", min_value) if value is None else value

    def Float(  # noqa: N802
        self, name: str, min_value: float, max_value: float, **kwargs: Any
    ) -> float:
        value = self.hp.Float(name, min_value, max_value, **kwargs)
        return kwargs.get("default", min_value) if value is None else value

    def Choice(self, name: str, values: list[Any], **kwargs: Any) -> Any:  # noqa: N802
        value = self.hp.Choice(name, list(values), **kwargs)
        return kwargs.get("default", values[0]) if value is None else value

    def Boolean(self, name: str, **kwargs: Any) -> bool:  # noqa: N802
        value = self.hp.Boolean(name, **kwargs)
        return bool(kwargs.get("default", False)) if value is None else value

    def Fixed(self, name: str, value: Any, **kwargs: Any) -> Any:  # noqa: N802
        fixed = self.hp.Fixed(name, value, **kwargs)
        return value if fixed is None else fixed

    @contextlib.contextmanager
    def conditional_scope(self, parent_name: str, parent_values: Any) -> Iterator[None]:
        with self.hp.conditional_scope(parent_name, parent_values):
            yield

    @contextlib.contextmanager
    def name_scope(self, prefix: str) -> Iterator[None]:
        with self.hp.name_scope(prefix):
            yield


class SpaceHyperModel(kt.HyperModel):
    """`build(hp, spec)` of an automl space, searchable by any keras-tuner tuner.

    Args:
        build: The space's build function.
        spec: The data facts the space builds for.
    """

    def __init__(self, build: Callable[[Any, Any], Any], spec: Any) -> None:
        super().__init__()
        self.space_build, self.spec = build, spec
        self._last: KtHp | None = None

    def build(self, hp: kt.HyperParameters) -> Any:
        self._last = KtHp(hp)
        return self.space_build(self._last, self.spec)

    def fit(self, hp: kt.HyperParameters, model: Any, *args: Any, **kwargs: Any) -> Any:
        # keras-tuner builds the trial's model right before fitting it.
        extra = self._last or KtHp(hp)
        kwargs = {**kwargs, **extra.fit_kwargs}
        kwargs["callbacks"] = [*kwargs.get("callbacks", []), *extra.callbacks]
        return model.fit(*args, **kwargs)
