"""Which built-in datasets can be loaded here, and from where, without loading any.

Answers fast: no Keras or TensorFlow import, no unpacking, and at most one network probe
(a TCP connect to Keras' download host) shared by every set that needs a download.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from automl import settings

DOWNLOAD_HOST = "storage.googleapis.com"


def check_builtins(data_dir: Path | None) -> list[tuple[str, bool, str]]:
    """(name, available, where) for every entry of `DATASETS`, in table order.

    `where` is "bundled with scikit-learn", the local copy (folder, archive or `.npz` in
    `data_dir` or `AUTOML_DATA_DIR`), Keras' cached file, "download from keras.datasets",
    or, when none of these is possible, what is missing and where to read on.

    Args:
        data_dir: The `--data-dir` folder, or None to look in `AUTOML_DATA_DIR` only.
    """
    from automl.data import DATASETS
    from automl.data._keras import keras_cache_file, local_source

    rows: list[tuple[str, bool, str]] = []
    online: bool | None = None  # probed once, on the first set that needs a download
    for name, info in DATASETS.items():
        if info.source == "sklearn":
            rows.append((name, True, "bundled with scikit-learn"))
            continue
        found = local_source(name, data_dir) or keras_cache_file(name)
        if found is not None:
            rows.append((name, True, str(found)))
            continue
        if online is None:
            online = can_download()
        if online:
            rows.append((name, True, "download from keras.datasets"))
        else:
            where = data_dir or settings.data_dir()
            missing = f"no local copy in {where}" if where else "no --data-dir/AUTOML_DATA_DIR"
            rows.append((name, False, f"{missing} and no network; see README 'Offline datasets'"))
    return rows


def can_download(timeout: float = 3.0) -> bool:
    """Whether Keras' download host answers a TCP connect within `timeout` seconds.

    The probe runs in a daemon thread so that a slow DNS lookup, which the socket timeout
    does not bound, cannot hold the caller longer either.
    """
    answered: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((DOWNLOAD_HOST, 443), timeout=timeout):
                answered.append(True)
        except OSError:
            answered.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answered and answered[0])
