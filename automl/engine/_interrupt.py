"""Ctrl-C and SIGTERM at safe points: the first SIGINT or SIGTERM sets a flag that the
trial loop checks between batches and between trials; only then does `KeyboardInterrupt`
rise, and the running trial ends FAIL ("interrupted"). A signal landing in
the middle of an MLflow or Optuna database write would otherwise leave a SQLite
transaction open and the cleanup that follows would find the database locked. A second
Ctrl-C interrupts at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import keras


@contextlib.contextmanager
def graceful_interrupt() -> Iterator[Callable[[], bool]]:
    """Install the handler; yields a function telling whether Ctrl-C (or SIGTERM) came."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False  # signals reach only the main thread
        return
    pressed = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        if pressed.is_set():
            raise KeyboardInterrupt
        pressed.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield pressed.is_set
    finally:
        for sig, handler_before in previous.items():
            signal.signal(sig, handler_before)


def raise_if(pressed: Callable[[], bool]) -> None:
    """Raise `KeyboardInterrupt` here, at a safe point, if Ctrl-C was pressed."""
    if pressed():
        raise KeyboardInterrupt


class StopOnInterrupt(keras.callbacks.Callback):
    """Ends `fit` with `KeyboardInterrupt` at the first batch end after Ctrl-C."""

    def __init__(self, pressed: Callable[[], bool]) -> None:
        super().__init__()
        self.pressed = pressed

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        raise_if(self.pressed)

    def on_test_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        raise_if(self.pressed)
