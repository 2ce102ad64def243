"""Exceptions shared across layers.

`UsageError` is the user's mistake (bad option, unknown name, unreachable URL): the CLI
prints its one-line message and exits 2. `TrialFailed` ends one trial as FAIL with a
reason; the study goes on.

A message names options as placeholders, `{class_weight}`, so that it speaks the
caller's language: `str(error)` says `class_weight` (the Python parameter), the CLI says
`--class-weight` (`error.for_cli()`). A placeholder is `{name}` for a name of `OPTIONS`;
other braces (in paths, values, library messages) are left alone.
"""

from __future__ import annotations

import re

# Every option a message may name: the Python parameter, and `--name-with-dashes` on the
# command line (tests/test_public_api.py checks it covers every CLI flag).
OPTIONS = frozenset(
    {
        "dataset", "space", "trials", "timeout", "max_epochs", "sampler", "pruner", "seed",
        "study", "storage", "tracking_uri", "out", "data_dir", "patience", "target",
        "text_column", "task", "metric", "class_weight", "subset", "jobs", "port", "host",
        "top", "check", "format", "trial", "max_params", "max_latency_ms",
        "objectives",
    }
)  # fmt: skip
_OPTION = re.compile(r"\{(" + "|".join(sorted(OPTIONS)) + r")\}")


class UsageError(ValueError):
    """A problem with what the user asked for; the message says what and how to fix it.

    Args:
        message: One line; options named as `{option_name}` placeholders.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.template = message

    def __str__(self) -> str:
        return _OPTION.sub(lambda m: m.group(1), self.template)

    def for_cli(self) -> str:
        """The message with options as command-line flags (`--class-weight`)."""
        return _OPTION.sub(lambda m: "--" + m.group(1).replace("_", "-"), self.template)


class TrialFailed(RuntimeError):
    """A trial that cannot produce a result (NaN loss, bad model output, ...)."""
