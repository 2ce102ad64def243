"""Reachability checks for the storage URL and the MLflow tracking URI.

They run before anything is created and import nothing heavy, so a wrong URL answers in
well under a second with one line naming it (credentials masked).
"""

from __future__ import annotations

import base64
import os
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

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
    except Exception as exc:  # noqa: BLE001 - driver missing, refused, bad URL: all unreachable
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


def _check_server(uri: str) -> None:
    """GET /health, sending any `user:password@` of the URI as basic auth, as MLflow does."""
    parts = urlsplit(uri)
    request_url = (
        urlunsplit(
            parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))
        ).rstrip("/")
        + "/health"
    )
    request = urllib.request.Request(request_url)
    if parts.username is not None:
        token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(token).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            if response.status == 200:
                return
            problem = f"HTTP {response.status}"
    except Exception as exc:  # noqa: BLE001 - any failure means unreachable
        problem = str(getattr(exc, "reason", exc))
    raise UsageError(
        f"cannot reach the MLflow tracking server {mask_url(uri)} ({problem}); start it or pass "
        f"another {{tracking_uri}}."
    )
