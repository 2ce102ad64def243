"""`SearchResult`: what a search returns. Cheap to import (no TensorFlow)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras
    import optuna


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """What `search` returns.

    Attributes:
        study: The Optuna study, for anything else.
        summary: The content of `summary.json`.
        best_model: The best model (None when no trial completed).
        recycled: This process stopped early because its memory grew, and a fresh
            worker process went on.
    """

    study: optuna.Study
    summary: dict[str, Any]
    best_model: keras.Model | None
    recycled: bool = False

    @property
    def best_params(self) -> dict[str, Any]:
        """Params of the best trial ({} when no trial completed)."""
        return self.summary["best"]["params"] if self.summary.get("best") else {}

    @property
    def best_value(self) -> float | None:
        """The best trial's validation score (None when no trial completed)."""
        return self.summary["best"]["val_metric"] if self.summary.get("best") else None
