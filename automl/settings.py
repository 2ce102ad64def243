"""Every `AUTOML_*` environment variable, read in one place under one policy.

`VARIABLES` is the table: name, default, what a good value is, an example and a one-line
doc (the README table and `--help` come from it through `describe`). Each accessor reads
the environment when called, so a test's `monkeypatch.setenv` or a parent process's
environment for its workers takes effect at once. An unset or empty variable means its
default; a bad value is a `UsageError` with one line that names the variable, the value
and the fix. MLflow's own `MLFLOW_TRACKING_URI` is honoured too, after
`AUTOML_TRACKING_URI`.

This is the lowest layer: the standard library and `automl._errors` only, so that any
module, the CLI's `--help` included, can read settings without importing TensorFlow.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from automl._errors import UsageError

__all__ = [
    "DEFAULT_STORAGE",
    "DEFAULT_TRACKING_URI",
    "VARIABLES",
    "Variable",
    "cache_dir",
    "data_dir",
    "describe",
    "explore_downsample",
    "heartbeat_seconds",
    "memory_budget",
    "mlflow_patience",
    "parse_size",
    "recycle_mb",
    "report_every",
    "storage_url",
    "tracking_uri",
]

DEFAULT_STORAGE = "sqlite:///automl.db"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
TRACKING_OFF = "none"  # the tracking URI that turns MLflow off, in any case

_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(text: str) -> int:
    """Bytes in a size like `800M`, `1.5G`, `2gb` or `512KiB` (powers of 1024).

    Raises:
        ValueError: If `text` is not such a size.
    """
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?", text.strip().lower())
    if not match:
        raise ValueError(text)
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def _whole(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.isdigit() or int(text) < minimum:
            raise ValueError(text)
        return int(text)

    return parse


def _number(minimum: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = float(text)
        if not value >= minimum:  # not `<`: NaN compares false both ways and is refused
            raise ValueError(text)
        return value

    return parse


def _url(text: str) -> str:
    if "://" not in text:
        raise ValueError(text)
    return text


def _folder(*, must_exist: bool) -> Callable[[str], Path]:
    def parse(text: str) -> Path:
        path = Path(text).expanduser()
        if path.is_dir() or not (must_exist or path.exists()):
            return path
        raise ValueError(text)

    return parse


@dataclasses.dataclass(frozen=True)
class Variable:
    """One environment variable.

    Attributes:
        name: The variable, e.g. `AUTOML_HEARTBEAT`.
        default: The raw value used when the variable is unset or empty, parsed like a
            set one; None: the accessor returns None (or its caller decides).
        rule: What a good value is, completing "NAME must be ...".
        example: A good value, for the fix in the error message.
        doc: One line for the README and `--help`.
        parse: Turns a non-empty value into the setting; raises ValueError if it is bad.
        shown_default: The default as the docs show it, where `default` alone says too
            little (a None default, or one that depends on another variable).
    """

    name: str
    default: str | None
    rule: str
    example: str
    doc: str
    parse: Callable[[str], Any] = str
    shown_default: str = ""

    def read(self) -> Any:
        """The parsed value from the environment now, or the parsed default.

        Raises:
            UsageError: If the value is bad, naming the variable, the value and the fix.
        """
        raw = os.environ.get(self.name, "").strip() or self.default
        if raw is None:
            return None
        try:
            return self.parse(raw)
        except ValueError:
            raise UsageError(
                f"{self.name} must be {self.rule}, but got {raw!r}; unset it or set e.g. "
                f"{self.name}={self.example}."
            ) from None


VARIABLES: dict[str, Variable] = {
    v.name: v
    for v in (
        Variable(
            "AUTOML_STORAGE",
            DEFAULT_STORAGE,
            "a database URL like sqlite:///automl.db or journal:///study.log",
            "sqlite:///automl.db",
            "Optuna storage URL of every subcommand without --storage.",
            _url,
        ),
        Variable(
            "AUTOML_TRACKING_URI",
            None,
            "an MLflow tracking URI, or none",
            "sqlite:///mlflow.db",
            "MLflow tracking URI of every subcommand without --tracking-uri; none: no MLflow.",
            shown_default=f"$MLFLOW_TRACKING_URI, else {DEFAULT_TRACKING_URI}",
        ),
        Variable(
            "MLFLOW_TRACKING_URI",
            DEFAULT_TRACKING_URI,
            "an MLflow tracking URI, or none",
            "sqlite:///mlflow.db",
            "MLflow's own variable, used when AUTOML_TRACKING_URI is unset.",
        ),
        Variable(
            "AUTOML_HEARTBEAT",
            "30",
            "a whole number of seconds (at least 1)",
            "30",
            "Seconds between a trial's heartbeats; a trial is lost after three missed beats.",
            _whole(1),
        ),
        Variable(
            "AUTOML_RECYCLE_MB",
            "100",
            "a number of MB (0 or more)",
            "100",
            "Memory growth in MB after which a worker process hands over (0: never).",
            _number(0),
        ),
        Variable(
            "AUTOML_REPORT_EVERY",
            "600",
            "a number of seconds (0 or more)",
            "600",
            "Seconds between study report refreshes during a search (0: after every trial).",
            _number(0),
        ),
        Variable(
            "AUTOML_MLFLOW_PATIENCE",
            "120",
            "a number of seconds (0 or more)",
            "120",
            "Seconds a search waits for an unreachable MLflow before it goes on without it.",
            _number(0),
        ),
        Variable(
            "AUTOML_EXPLORE_DOWNSAMPLE",
            "1",
            "a whole number (1: full size)",
            "2",
            "Image exploration trials see images this many times smaller per side (at least "
            "16 px); the long trainings see them full size. Off (1) by default.",
            _whole(1),
        ),
        Variable(
            "AUTOML_DATA_DIR",
            None,
            "an existing folder",
            "~/datasets",
            "Folder with local copies of the built-in datasets, after --data-dir.",
            _folder(must_exist=True),
            shown_default="(none: Keras' cache, else download)",
        ),
        Variable(
            "AUTOML_CACHE_DIR",
            "~/.cache/automl",
            "a folder (created if missing), not a file",
            "~/.cache/automl",
            "Folder for decoded image arrays and unpacked dataset archives.",
            _folder(must_exist=False),
        ),
        Variable(
            "AUTOML_MEMORY_BUDGET",
            None,
            "a size like 800M or 2G",
            "2G",
            "Decoded image bytes held in memory; a larger folder streams from disk.",
            parse_size,
            shown_default="a quarter of physical memory",
        ),
    )
}


def check_all() -> None:
    """Read every variable once, so a bad one stops a command before it opens anything.

    Raises:
        UsageError: For the first bad variable, naming it, its value and the fix.
    """
    for variable in VARIABLES.values():
        variable.read()


def describe() -> list[tuple[str, str, str]]:
    """(name, default, doc) for every variable, in table order: the README table and
    `--help` epilogs."""
    return [(v.name, v.shown_default or v.default or "", v.doc) for v in VARIABLES.values()]


def storage_url(explicit: str | None = None) -> str:
    """The Optuna storage URL: `explicit` (`--storage`), else `$AUTOML_STORAGE`, else
    `DEFAULT_STORAGE`.

    Raises:
        UsageError: If `AUTOML_STORAGE` is set but is no URL.
    """
    return explicit or VARIABLES["AUTOML_STORAGE"].read()


def tracking_uri(explicit: str | None = None) -> str | None:
    """The MLflow tracking URI, None when MLflow is off.

    `explicit` (`--tracking-uri`), else `$AUTOML_TRACKING_URI`, else MLflow's own
    `$MLFLOW_TRACKING_URI`, else `DEFAULT_TRACKING_URI`; the first one given wins, and
    `none` (any case) there means no MLflow.
    """
    uri = (
        explicit
        or VARIABLES["AUTOML_TRACKING_URI"].read()
        or VARIABLES["MLFLOW_TRACKING_URI"].read()
    )
    return None if uri.strip().lower() == TRACKING_OFF else uri


def heartbeat_seconds() -> int:
    """`AUTOML_HEARTBEAT`: seconds between a running trial's heartbeats (default 30)."""
    return VARIABLES["AUTOML_HEARTBEAT"].read()


def recycle_mb() -> float:
    """`AUTOML_RECYCLE_MB`: RSS growth in MB that retires a process (default 100; 0: never)."""
    return VARIABLES["AUTOML_RECYCLE_MB"].read()


def report_every() -> float:
    """`AUTOML_REPORT_EVERY`: seconds between report refreshes (default 600; 0: every trial)."""
    return VARIABLES["AUTOML_REPORT_EVERY"].read()


def explore_downsample() -> int:
    """`AUTOML_EXPLORE_DOWNSAMPLE`: how many times smaller per side exploration trials see
    images (default 1: full size; see `automl.engine._resolution` for why)."""
    return VARIABLES["AUTOML_EXPLORE_DOWNSAMPLE"].read()


def mlflow_patience() -> float:
    """`AUTOML_MLFLOW_PATIENCE`: seconds to wait for an unreachable MLflow (default 120)."""
    return VARIABLES["AUTOML_MLFLOW_PATIENCE"].read()


def data_dir() -> Path | None:
    """`AUTOML_DATA_DIR`: the folder with local dataset copies, None when unset."""
    return VARIABLES["AUTOML_DATA_DIR"].read()


def cache_dir() -> Path:
    """`AUTOML_CACHE_DIR`: the cache folder (default `~/.cache/automl`), not created here."""
    return VARIABLES["AUTOML_CACHE_DIR"].read()


def memory_budget() -> int | None:
    """`AUTOML_MEMORY_BUDGET` in bytes; None when unset (the caller picks the default)."""
    return VARIABLES["AUTOML_MEMORY_BUDGET"].read()
