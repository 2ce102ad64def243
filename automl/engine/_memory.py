"""Memory across trials: a worker whose resident memory keeps growing is replaced.

Measured here (`python -m benchmarks.trial_memory`): RSS grows by about 11 MB per trial
on digits whatever `keras.utils.clear_session` and MLflow do, as keras-tuner and Optuna
users report. So a process stops taking trials once its RSS has grown more than
`AUTOML_RECYCLE_MB` (default 100; 0 never recycles) since its first trial, and a fresh
`automl worker` process takes over the rest of the budget; the search's long trainings,
once they wait to run, stay where they are (a fresh process costs one of their epochs).
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator

RECYCLE_EXIT = 75  # a worker's exit code for "replace me" (BSD's EX_TEMPFAIL)


def rss_mb() -> float | None:
    """Resident set size of this process in MB, or None where the system will not say.

    Read through psutil, which knows Linux, macOS and Windows alike: /proc alone left
    recycling silently off on a Mac.
    """
    import psutil

    try:
        return psutil.Process().memory_info().rss / 2**20
    except psutil.Error:  # a sandbox that hides the process table: recycling stays off
        return None


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Hide what is alive now (TensorFlow's modules, the data) from the garbage collector
    during the trial loop.

    Optuna's full collection after every trial then walks only what trials allocated:
    0.5-0.75 s less per trial on digits (benchmarks/overhead.py). A caller's own
    `gc.freeze()` is left as it is.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class MemoryWatch:
    """Tells when RSS has grown more than `limit_mb` since the first check, while a
    fresh process would still have time to take over.

    Args:
        limit_mb: The growth that hands over (0: never).
        hand_over_by: `time.monotonic()` after which a fresh process could not start in
            time to train (`MIN_WORKER_SECONDS` before the deadline): past it this process
            keeps its trials, since the time left would otherwise go unused. None: always.
    """

    def __init__(self, limit_mb: float, hand_over_by: float | None = None) -> None:
        self.limit_mb = limit_mb
        self.hand_over_by = hand_over_by
        self.baseline: float | None = None
        self.growth = 0.0
        self.handing_over = False

    def grown(self, keep: Callable[[], bool] | None = None) -> bool:
        """Check now (after a trial): whether to hand over; the first call sets the baseline.

        Args:
            keep: Asked only past the limit: whether the next trials are the search's
                long trainings (at most two, see `_phases`). This process then keeps
                them whatever its growth, since a fresh one would take one of their
                epochs to start (about 24 s at 165 T on CIFAR-10), and a few trials leak
                too little to matter.
        """
        rss = rss_mb() if self.limit_mb else None
        if rss is None:
            return False
        if self.baseline is None:
            self.baseline = rss
        self.growth = rss - self.baseline
        late = self.hand_over_by is not None and time.monotonic() >= self.hand_over_by
        over = self.growth > self.limit_mb and not late
        self.handing_over = over and not (keep is not None and keep())
        return self.handing_over
