"""Many workers on one study: `--jobs N` processes on this machine, `automl worker`
anywhere that reaches the storage.

The study records its own configuration when it is created, so a worker needs only the
storage URL and the study name. Credentials never travel on a command line: spawned
workers get the storage and tracking URLs through their environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl._errors import UsageError
from automl.config import DEFAULT_STORAGE, DEFAULT_TRACKING_URI, SearchConfig
from automl.engine._memory import RECYCLE_EXIT

# SearchConfig fields a study records for its workers (no URLs: they may hold passwords).
RECORDED = (
    "dataset",
    "space",
    "trials",
    "timeout",
    "max_epochs",
    "sampler",
    "pruner",
    "seed",
    "patience",
    "target",
    "text_column",
    "task",
    "metric",
    "class_weight",
    "subset",
    "data_dir",
)
if TYPE_CHECKING:
    import optuna

STORAGE_ENV, TRACKING_ENV = "AUTOML_STORAGE", "AUTOML_TRACKING_URI"
# A worker spends a few seconds importing TensorFlow and loading data before its own
# budget starts; with less than this left it would only train a trial past the deadline.
MIN_WORKER_SECONDS = 15


def recorded_config(config: SearchConfig, *, in_memory: bool) -> dict[str, Any]:
    """What a study stores so that `automl worker` can rebuild `config`."""
    fields = {name: getattr(config, name) for name in RECORDED}
    fields["data_dir"] = str(config.data_dir) if config.data_dir else None
    return {**fields, "in_memory": in_memory}


def open_study(name: str, storage: str | None = None) -> tuple[optuna.Study, str]:
    """The study and its storage URL (default `$AUTOML_STORAGE`, else `sqlite:///automl.db`).

    Raises:
        UsageError: No such study (the ones there are listed).
    """
    from automl.engine._study import load_study

    storage = storage or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE
    return load_study(name, storage), storage


def worker_config(
    study: optuna.Study,
    storage: str,
    *,
    tracking_uri: str | None = None,
    out: Path | None = None,
    timeout: str | float | None = None,
    data_dir: Path | None = None,
) -> SearchConfig:
    """The configuration a study recorded, with this worker's URLs and folders.

    Args:
        study: The study to join (`open_study`).
        storage: Its storage URL.
        tracking_uri: MLflow (default `$AUTOML_TRACKING_URI`, else `sqlite:///mlflow.db`;
            `none` logs nothing).
        out: This worker's output folder (checkpoints of new bests).
        timeout: This worker's wall-clock budget; default: the study's recorded one.
        data_dir: Where this machine keeps dataset copies; default: the recorded folder.

    Raises:
        UsageError: No such study, or one a worker cannot rebuild.
    """
    tracking_uri = tracking_uri or os.environ.get(TRACKING_ENV) or DEFAULT_TRACKING_URI
    recorded = dict(study.user_attrs.get("config") or {})
    name = study.study_name
    if not recorded:
        raise UsageError(
            f"study {name!r} records no configuration (made by an older automl or by hand); "
            f"start a new study with `automl search ... --study NEW`."
        )
    if recorded.pop("in_memory", False):
        raise UsageError(
            f"study {name!r} searches in-memory data or a space object; workers need a "
            f"dataset name or path and a space name or file."
        )
    config = SearchConfig(
        **recorded,
        study=name,
        storage=storage,
        tracking_uri=None if tracking_uri.lower() == "none" else tracking_uri,
        out=out,
    )
    if timeout is not None:
        config.timeout = timeout
    if data_dir is not None:
        config.data_dir = data_dir
    return config.validate()


def spawn_workers(
    config: SearchConfig, indices: Iterable[int], deadline: float | None = None
) -> list[subprocess.Popen[bytes]]:
    """Start one `automl worker` process per index on the study; each logs to
    `<out>/workers/worker-<index>.log` (appended, across replacements).

    Args:
        config: The search's options.
        indices: Worker numbers (for the log names).
        deadline: `time.monotonic()` at which the search's `--timeout` ends: workers get
            what is left of it; none start with less than `MIN_WORKER_SECONDS` left.
    """
    folder = Path(config.out) / "workers"
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, STORAGE_ENV: config.storage, TRACKING_ENV: config.tracking_uri or "none"}
    command = [sys.executable, "-m", "automl", "worker", "--study", str(config.study)]
    command += ["--out", str(config.out)]
    if deadline is not None:
        left = deadline - time.monotonic()
        if left < MIN_WORKER_SECONDS:  # its own start-up would use up what is left
            return []
        command += ["--timeout", f"{left:.0f}"]
    if config.data_dir:
        command += ["--data-dir", str(config.data_dir)]
    workers = []
    for index in indices:
        log = (folder / f"worker-{index}.log").open("ab")
        workers.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
        workers[-1].index = index  # type: ignore[attr-defined] - for its replacement
        log.close()  # the child holds its own handle
    return workers


def wait_for_workers(workers: list[subprocess.Popen[bytes]], pressed: Any, respawner: Any) -> None:
    """Wait until every worker has exited, checking for Ctrl-C, showing finished trials
    (`respawner.follow()`) and replacing a worker that retired for memory
    (`respawner.replace(index)`, None once the budget is spent). `workers` is updated
    in place, so a caller's cleanup sees the replacements."""
    while True:
        if pressed():
            raise KeyboardInterrupt
        respawner.follow()
        for position, worker in enumerate(workers):
            if worker.poll() == RECYCLE_EXIT:
                fresh = respawner.replace(worker.index)  # type: ignore[attr-defined]
                if fresh is not None:
                    workers[position] = fresh
        if all(w.poll() is not None for w in workers):
            respawner.follow()
            return
        time.sleep(0.5)


def stop_workers(workers: list[subprocess.Popen[bytes]], grace: float = 60.0) -> None:
    """SIGTERM to the workers still running (each ends its trial as FAIL "interrupted"),
    then wait; SIGKILL after `grace` seconds."""
    for worker in workers:
        if worker.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                worker.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for worker in workers:
        try:
            worker.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
