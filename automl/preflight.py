"""Reachability checks for the storage URL and the MLflow tracking URI.

They run before anything is created, so a wrong URL answers in seconds with one line
naming it (credentials masked). A tracking server is asked through MLflow's own HTTP
client, so whatever lets MLflow in lets the check in (a token, TLS settings).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from automl._errors import UsageError


def mask_url(url: str) -> str:
    """Hide the password in a URL (`postgresql://bob:secret@db/x` -> `bob:***@db/x`)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def check_storage_url(url: str) -> None:
    """Fail fast, before anything is created, when the Optuna storage cannot be reached.

    Raises:
        UsageError: Naming the URL (credentials masked) and the fix.
    """
    _check_database(url, flag="{storage}", label="storage")


def check_tracking_uri(uri: str) -> None:
    """Fail fast, before anything is created, when MLflow cannot be reached at `uri`.

    Raises:
        UsageError: Naming the URI (credentials masked) and the fix.
    """
    if uri.startswith(("http://", "https://")):
        _check_server(uri)
    elif uri.startswith("file:") or "://" not in uri:
        path = uri.removeprefix("file://").removeprefix("file:")
        folder = Path(path).expanduser().resolve().parent
        _check_folder(folder, uri, "{tracking_uri}", "MLflow tracking URI")
    else:
        _check_database(uri, flag="{tracking_uri}", label="MLflow tracking URI")


def check_existing_sqlite(url: str, study: str) -> None:
    """For commands that read a study: a SQLite file that does not exist is an error
    (opening it would create an empty database)."""
    for prefix in ("sqlite:///", "journal:///"):
        if not url.startswith(prefix):
            continue
        path = Path(url.removeprefix(prefix)).expanduser()
        if not path.is_file():
            raise UsageError(
                f"no study {study!r}: storage file {path} does not exist; pass the {{storage}} "
                f"the search used."
            )


def _check_database(url: str, *, flag: str, label: str) -> None:
    shown = mask_url(url)
    if url.startswith("journal:///"):  # Optuna's JournalStorage on a file
        folder = Path(url.removeprefix("journal:///")).expanduser().resolve().parent
        _check_folder(folder, url, flag, label)
        return
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///")).expanduser()
        _check_folder(path.resolve().parent, url, flag, label)
        _check_sqlite_file(path, url, flag, label)
        return
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except ImportError as exc:  # the database's driver is not installed
        raise UsageError(
            f"cannot use {label} {shown}: its driver is not installed (no module "
            f"{exc.name!r}); {_driver_fix(url, exc.name)}, or pass another {flag}."
        ) from None
    except Exception as exc:  # noqa: BLE001 - refused, bad URL: all unreachable
        reason = str(exc).splitlines()[0].replace(url, shown) if str(exc) else type(exc).__name__
        raise UsageError(
            f"cannot reach {label} {shown} ({reason}); check the URL and the server, "
            f"or pass another {flag}."
        ) from None


# The first 16 bytes of every SQLite 3 database file (an empty file is one too).
SQLITE_HEADER = b"SQLite format 3\x00"


def _check_sqlite_file(path: Path, url: str, flag: str, label: str) -> None:
    """An existing file that is not a SQLite database (a bad copy, another program's
    file) is refused before SQLAlchemy opens it; its bytes are only read."""
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return  # a new database, or a URL with options: SQLAlchemy decides
    except OSError as exc:
        raise UsageError(
            f"cannot use {label} {mask_url(url)}: cannot read {path} ({exc.strerror}); "
            f"pass another {flag}."
        ) from None
    if header and header != SQLITE_HEADER:
        raise UsageError(
            f"cannot use {label} {mask_url(url)}: {path} is not a SQLite database; "
            f"pass another {flag} (the file was left as it is)."
        )


def _check_folder(folder: Path, url: str, flag: str, label: str) -> None:
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise UsageError(
            f"cannot use {label} {mask_url(url)}: folder {folder} does not exist or "
            f"is not writable; create it or pass another {flag}."
        )


def _driver_fix(url: str, module: str | None) -> str:
    """How to install the driver a database URL needs."""
    if url.startswith("postgresql") and module in ("psycopg", None):
        return "install it with `pip install 'automl[postgres]'`"
    return f"install the package that provides `{module}`"


# An authenticated read: a server that answers /health to anyone still checks credentials.
PROBE = "/api/2.0/mlflow/experiments/search"


def _check_server(uri: str) -> None:
    """One request through MLflow's HTTP client with MLflow's own credentials: the URI's
    `user:password@`, MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN, and
    MLFLOW_TRACKING_INSECURE_TLS / MLFLOW_TRACKING_SERVER_CERT_PATH / ..._CLIENT_CERT_PATH.
    No retries: an unreachable server answers in seconds, not after MLflow's backoff."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    try:
        response = http_request(
            get_default_host_creds(uri), PROBE, "GET", params={"max_results": 1},
            max_retries=0, timeout=5, raise_on_status=False,
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - refused, DNS, TLS: all unreachable
        problem = _root_cause(exc)
    else:
        if response.status_code == 200:
            return
        problem = f"HTTP {response.status_code}"
        if response.status_code in (401, 403):
            raise UsageError(
                f"the MLflow tracking server {mask_url(uri)} refused the credentials "
                f"({problem}); set MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME and "
                f"MLFLOW_TRACKING_PASSWORD."
            )
    raise UsageError(
        f"cannot reach the MLflow tracking server {mask_url(uri)} ({problem}); start it or pass "
        f"another {{tracking_uri}}."
    )


def _root_cause(exc: BaseException) -> str:
    """The innermost reason of a chained network error ("[Errno 111] Connection
    refused", "certificate verify failed"), without the URL (it may hold a password)."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    for arg in exc.args:
        if isinstance(arg, BaseException):
            return _root_cause(arg)
    text = str(exc).split(": ", 1)[-1] if "Failed to establish" in str(exc) else str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
