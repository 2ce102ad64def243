"""Deliver MLflow calls in order, and hold them while the tracking server is away.

A search must never stop or lose a trial because MLflow is down. Every call the tracker
makes goes through an `Outbox`: it runs at once when the server answers; when the server
is unreachable the call waits in a queue, in order, with everything after it, and the
queue is retried on later calls (at most every `retry_every` seconds) and once more,
patiently, at the end of the search. Runs created while the server is away get a local
key that is swapped for the real run id on delivery.

Only an unreachable server queues a call. Any other MLflow error (a rejected value, say)
is logged and the call dropped, so one bad record cannot block the rest.
"""

from __future__ import annotations

import collections
import logging
import os
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("automl")

# A call: runs against the client, resolving local run keys with the function it gets.
Call = Callable[[Callable[[str], str]], Any]

_LOCAL_KEY = "pending-run-"

# HTTP answers of a server that is restarting or behind a proxy that lost it.
_UNAVAILABLE = (
    "502",
    "503",
    "504",
    "BAD_GATEWAY",
    "SERVICE_UNAVAILABLE",
    "TEMPORARILY_UNAVAILABLE",
)


def limit_http_retries() -> None:
    """Fail fast on a dead server: MLflow's default retries block a call for minutes.

    The outbox retries instead, without holding up training. A user's own settings win
    (but MLflow never prints run URLs: they would show the password).
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    # MLflow prints "View run ... at: URL" on stdout when a run ends, with the URL's
    # user:password in it; the CLI shows its own masked links instead.
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"


def is_unreachable(exc: BaseException) -> bool:
    """True when `exc` says the server could not be reached, not that it refused the call."""
    import requests

    if isinstance(exc, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
        return True
    text = str(exc)
    if "failed with exception" in text and text.startswith("API request to"):
        return True  # MLflow's wrapping of a connection error or exhausted retries
    return any(code in text.split(":")[0] for code in _UNAVAILABLE)


class Outbox:
    """An ordered queue of MLflow calls that survives an unreachable server.

    Args:
        where: The tracking URI, masked, for the warning.
        retry_every: Seconds between delivery attempts while the server is away.
    """

    def __init__(self, where: str, *, retry_every: float = 5.0) -> None:
        self.where = where
        self.retry_every = retry_every
        self._queue: collections.deque[Call] = collections.deque()
        self._run_ids: dict[str, str] = {}
        self._keys = 0
        self._retry_at = 0.0
        self._warned = False
        self.delivered_late = 0

    @property
    def pending(self) -> int:
        """Calls waiting for the server."""
        return len(self._queue)

    def new_key(self) -> str:
        """A local name for a run that may not exist on the server yet."""
        self._keys += 1
        return f"{_LOCAL_KEY}{self._keys}"

    @staticmethod
    def is_local(key: str) -> bool:
        """True for a key from `new_key` (whether or not it is bound yet)."""
        return key.startswith(_LOCAL_KEY)

    def bind(self, key: str, run_id: str) -> None:
        """Record the real id of the run known locally as `key`."""
        self._run_ids[key] = run_id

    def resolve(self, key: str) -> str:
        """The real run id for a local key (real ids pass through)."""
        return self._run_ids.get(key, key)

    def send(self, call: Call) -> None:
        """Run `call` now if the queue is empty and the server answers; else queue it."""
        self._queue.append(call)
        if len(self._queue) == 1 or time.monotonic() >= self._retry_at:
            self.flush()

    def flush(self) -> bool:
        """Deliver queued calls in order; False when the server is still unreachable."""
        was_behind = self._warned and bool(self._queue)
        while self._queue:
            try:
                self._queue[0](self.resolve)
            except Exception as exc:  # noqa: BLE001 - sorted below: wait, or drop and go on
                if is_unreachable(exc):
                    self._away(exc)
                    return False
                logger.warning("MLflow refused a call, skipped: %s", str(exc).splitlines()[0])
            self._queue.popleft()
            if was_behind:
                self.delivered_late += 1
        if was_behind:
            logger.warning(
                "MLflow at %s is back: caught up on %d delayed calls.",
                self.where,
                self.delivered_late,
            )
            self._warned = False
        return True

    def drain(self, patience: float) -> bool:
        """At the end of a search: keep retrying for up to `patience` seconds.

        Returns:
            True when everything was delivered.
        """
        if not self._queue or self.flush():
            return True
        logger.warning(
            "waiting up to %.0f s for MLflow at %s to deliver %d calls (a second Ctrl-C skips).",
            patience,
            self.where,
            len(self._queue),
        )
        give_up = time.monotonic() + patience
        try:
            while time.monotonic() < give_up:
                time.sleep(min(self.retry_every, max(0.0, give_up - time.monotonic())))
                if self.flush():
                    return True
        except KeyboardInterrupt:
            pass
        logger.warning(
            "MLflow at %s stayed unreachable: %d calls were not delivered; the Optuna study "
            "is complete and `automl show` reads it.",
            self.where,
            len(self._queue),
        )
        return False

    def _away(self, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + self.retry_every
        if not self._warned:
            self._warned = True
            self.delivered_late = 0
            logger.warning(
                "MLflow at %s is unreachable (%s); the search goes on and catches up when "
                "it returns.",
                self.where,
                str(exc).splitlines()[0][:160],
            )
