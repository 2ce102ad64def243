"""Many workers on one study: `--jobs N` processes on this machine, `automl worker`
anywhere that reaches the storage, and the replacement of a worker that retired.

The study records its own configuration when it is created (`StudyRecord`), so a worker
needs only the storage URL and the study name. Credentials never travel on a command
line: spawned workers get the storage and tracking URLs through their environment.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from automl import settings
from automl.config import SearchConfig
from automl.engine._memory import RECYCLE_EXIT
from automl.engine._study import budget_spent
from automl.objective import score
from automl.record import StudyRecord

if TYPE_CHECKING:
    import optuna

    from automl.engine._observer import SearchObserver

logger = logging.getLogger("automl")

# A worker spends a few seconds importing TensorFlow and loading data before its own
# budget starts; with less than this left it would only train a trial past the deadline.
MIN_WORKER_SECONDS = 15


def open_study(name: str, storage: str | None = None) -> tuple[optuna.Study, str]:
    """The study and its storage URL (default `$AUTOML_STORAGE`, else `sqlite:///automl.db`).

    Raises:
        UsageError: No such study (the ones there are listed).
    """
    from automl.engine._study import load_study

    storage = settings.storage_url(storage)
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
        tracking_uri: MLflow (default `$AUTOML_TRACKING_URI`, else `$MLFLOW_TRACKING_URI`,
            else `sqlite:///mlflow.db`; `none` logs nothing).
        out: This worker's output folder (checkpoints of new bests).
        timeout: This worker's wall-clock budget; default: the study's recorded one.
        data_dir: Where this machine keeps dataset copies; default: the recorded folder.

    Raises:
        UsageError: No such study, or one a worker cannot rebuild.
    """
    changes = {"study": study.study_name, "storage": storage, "out": out}
    changes["tracking_uri"] = settings.tracking_uri(tracking_uri)
    if timeout is not None:
        changes["timeout"] = timeout
    if data_dir is not None:
        changes["data_dir"] = data_dir
    return StudyRecord.of(study).rebuild_config(**changes)


def worker_log(out: Path, index: int) -> Path:
    """Where worker `index` of the search writing to `out` logs (appended across its
    replacements)."""
    return out / "workers" / f"worker-{index}.log"


def spawn_workers(
    config: SearchConfig, indices: Iterable[int], deadline: float | None = None
) -> list[subprocess.Popen[bytes]]:
    """Start one `automl worker` process per index on the study; each logs to
    `<out>/workers/worker-<index>.log` (appended, across replacements).

    Args:
        config: The search's resolved options.
        indices: Worker numbers (for the log names).
        deadline: `time.monotonic()` at which the search's `--timeout` ends: workers get
            what is left of it; none start with less than `MIN_WORKER_SECONDS` left.
    """
    # The URLs travel in the environment, never on a command line (they may hold
    # passwords); the worker reads them through `automl.settings`.
    env = {
        **os.environ,
        "AUTOML_STORAGE": str(config.storage),
        "AUTOML_TRACKING_URI": config.tracking_uri or settings.TRACKING_OFF,
        # Line by line into the log, so `tail -f` follows its trials as they end (a
        # block-buffered log showed nothing for 15 minutes of a CIFAR-10 search).
        "PYTHONUNBUFFERED": "1",
    }
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
        path = worker_log(Path(config.out), index)
        path.parent.mkdir(parents=True, exist_ok=True)
        log = path.open("ab")
        workers.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
        workers[-1].index = index  # type: ignore[attr-defined] - for its replacement
        log.close()  # the child holds its own handle
    return workers


class WorkerPool:
    """The worker processes one search started: spawned, followed, replaced, stopped.

    A context manager: leaving it stops every worker still running (SIGTERM, then
    SIGKILL after a grace period).

    Args:
        config: The search's resolved options.
        deadline: `time.monotonic()` at which `--timeout` ends, or None.
    """

    def __init__(self, config: SearchConfig, deadline: float | None) -> None:
        self.config, self.deadline = config, deadline
        self.workers: list[subprocess.Popen[bytes]] = []
        self.crashes_reported: set[int] = set()  # pids

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop every worker still running (a no-op once they all exited)."""
        stop_workers(self.workers)

    def spawn(self, count: int) -> None:
        """Start `count` more workers, numbered after those started so far."""
        first = len(self.workers) + 1
        self.workers += spawn_workers(self.config, range(first, first + count), self.deadline)

    def wait(
        self,
        study: optuna.Study,
        observer: SearchObserver,
        pressed: Callable[[], bool],
        tick: Callable[[optuna.Study], None] | None = None,
    ) -> None:
        """Until every worker has exited: check for Ctrl-C, show the trials they finish,
        replace a worker that retired for memory (exit `RECYCLE_EXIT`) while the budget
        is not spent, and call `tick` (the study's own decisions, such as starting the
        long trainings) every half second."""
        seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
        while True:
            if pressed():
                raise KeyboardInterrupt
            _show_finished(study, observer, seen)
            if tick is not None:
                tick(study)
            # One reading of the exit codes per round: a worker that exits between two
            # readings would otherwise be neither replaced nor waited for.
            codes = [worker.poll() for worker in self.workers]
            for position, code in enumerate(codes):
                self._report_crash(position, code)
                if code == RECYCLE_EXIT and not budget_spent(study, self.config.trials):
                    index = self.workers[position].index  # type: ignore[attr-defined]
                    fresh = spawn_workers(self.config, [index], self.deadline)
                    if fresh:
                        self.workers[position], codes[position] = fresh[0], None
            if all(code is not None for code in codes):
                _show_finished(study, observer, seen)
                return
            time.sleep(0.5)

    def _report_crash(self, position: int, code: int | None) -> None:
        """One warning for a worker that ended neither done nor retired (its trials are
        retried once their heartbeat lapses, and this process runs what is left)."""
        worker = self.workers[position]
        if code in (None, 0, RECYCLE_EXIT) or worker.pid in self.crashes_reported:
            return
        self.crashes_reported.add(worker.pid)
        index = worker.index  # type: ignore[attr-defined]
        log = worker_log(Path(self.config.out), index)
        logger.warning("worker %d exited with code %d; its log: %s", index, code, log)


def _show_finished(study: optuna.Study, observer: SearchObserver, seen: set[int]) -> None:
    """Tell the observer about trials other workers finished since the last look."""
    from automl.export import best_value
    from automl.record import TrialRecord

    for trial in study.get_trials(deepcopy=False):
        if trial.state.is_finished() and trial.number not in seen:
            seen.add(trial.number)
            reason = TrialRecord.read(trial).reason
            observer.trial_ended(
                trial.number, trial.state.name, score(trial), best_value(study), reason
            )


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
