"""What a model costs to ship, measured as built: parameters, file size, CPU latency.

The search measures every trial's model before training (`engine._limits` rejects the
ones over `--max-params` / `--max-latency-ms`; `--objectives` minimizes them), the final
model's options (an ensemble, TTA) are held to the same limits, and the model card
measures the exported model the same way.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

WARMUP_CALLS = 2  # the first call traces the predict function
TIMED_CALLS = 15
TIMING_CAP_S = 1.0  # a slow model is timed on fewer calls, never for more than this


@dataclasses.dataclass(frozen=True)
class Footprint:
    """A built model's size and speed.

    Attributes:
        n_params: Its parameter count (trainable or not).
        size_mb: The size of its `.keras` file, in MB (10^6 bytes): weights and
            architecture, no optimizer state; None if Keras cannot save it.
        latency_ms: Median milliseconds of `predict_on_batch` on one example, after
            warm-up, on this machine; None if it could not run.
    """

    n_params: int
    size_mb: float | None
    latency_ms: float | None

    def facts(self) -> dict[str, float]:
        """The measured values, for MLflow metrics and the trial's record."""
        values = dataclasses.asdict(self)
        return {key: value for key, value in values.items() if value is not None}


def measure_footprint(model: keras.Model, example: Any) -> Footprint:
    """Measure `model` as built; `example` is one encoded input row (batch of 1)."""
    return Footprint(
        n_params=int(model.count_params()),
        size_mb=_saved_size_mb(model),
        latency_ms=latency_ms(model, example),
    )


def _saved_size_mb(model: keras.Model) -> float | None:
    with tempfile.TemporaryDirectory(prefix="automl-size-") as folder:
        path = Path(folder) / "model.keras"
        try:
            model.save(path)
        except Exception:  # noqa: BLE001 - a custom layer without get_config
            return None
        return round(path.stat().st_size / 1e6, 6)  # to the byte


def latency_ms(model: keras.Model, example: Any) -> float | None:
    """Median milliseconds of `predict_on_batch` on `example` (one row), after
    warm-up, at most `TIMING_CAP_S` of timing; None if the model does not run on it."""
    try:
        for _ in range(WARMUP_CALLS):
            model.predict_on_batch(example)
        times: list[float] = []
        started = time.perf_counter()
        while len(times) < TIMED_CALLS and time.perf_counter() - started < TIMING_CAP_S:
            begin = time.perf_counter()
            model.predict_on_batch(example)
            times.append(time.perf_counter() - begin)
    except Exception:  # noqa: BLE001 - e.g. a model that takes other inputs than its data
        return None
    return round(1000 * statistics.median(times), 4)
