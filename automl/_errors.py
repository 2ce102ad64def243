"""Exceptions shared across layers.

`UsageError` is the user's mistake (bad flag, unknown name, unreachable URL): the CLI
prints its one-line message and exits 2. `TrialFailed` ends one trial as FAIL with a
reason; the study goes on.
"""

from __future__ import annotations


class UsageError(ValueError):
    """A problem with what the user asked for; the message says what and how to fix it."""


class TrialFailed(RuntimeError):
    """A trial that cannot produce a result (NaN loss, bad model output, ...)."""
