"""Exceptions shared across layers.

`UsageError` is the user's mistake (bad option, unknown name, unreachable URL): the CLI
prints its one-line message and exits 2. `TrialFailed` ends one trial as FAIL with a
reason; the study goes on.

A message names options as placeholders, `{class_weight}`, so that it speaks the
caller's language: `str(error)` says `class_weight` (the Python parameter), the CLI says
`--class-weight` (`error.for_cli()`). A placeholder is `{` + lower_snake_case + `}`;
other braces are left alone.
"""

from __future__ import annotations

import re

_OPTION = re.compile(r"\{([a-z][a-z0-9_]*)\}")


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
