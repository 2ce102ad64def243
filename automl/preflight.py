"""Reachability checks for the storage URL and the MLflow tracking URI.

They run before anything is created and import nothing heavy, so a wrong URL answers in
well under a second with one line naming it (credentials masked).
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

from automl._errors import UsageError
from automl.config import mask_url


def check_storage_url(url: str) -> None:
    """Fail fast, before anything is created, when the storage cannot be reached.

    Raises:
        UsageError: Naming the URL (credentials masked) and the fix.
    """
    shown = mask_url(url)
    if url.startswith("sqlite:///"):
        folder = Path(url.removeprefix("sqlite:///")).expanduser().resolve().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise UsageError(
                f"cannot use storage {shown}: folder {folder} does not exist or is not "
                f"writable; create it or pass another --storage."
            )
        return
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - driver missing, refused, bad URL: all unreachable
        reason = str(exc).splitlines()[0].replace(url, shown)
        raise UsageError(
            f"cannot reach storage {shown} ({reason}); check the URL or the "
            f"server, or pass another --storage."
        ) from None


def check_tracking_uri(uri: str) -> None:
    """Fail fast, before anything is created, when MLflow cannot be reached at `uri`.

    Raises:
        UsageError: Naming the URI (credentials masked) and the fix.
    """
    shown = mask_url(uri)
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5) as response:
                if response.status == 200:
                    return
        except Exception as exc:  # noqa: BLE001 - any failure means unreachable
            raise UsageError(
                f"cannot reach the MLflow tracking server {shown} ({exc}); start it or pass "
                f"another --tracking-uri."
            ) from None
        raise UsageError(f"the MLflow tracking server {shown} is not healthy.")
    if uri.startswith("sqlite:///") or uri.startswith("file:") or "://" not in uri:
        path = uri.removeprefix("sqlite:///").removeprefix("file://").removeprefix("file:")
        folder = Path(path).expanduser().resolve().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise UsageError(
                f"cannot use MLflow tracking URI {shown}: folder {folder} does not exist or is "
                f"not writable; create it or pass another --tracking-uri."
            )
