"""The Optuna side: storage, sampler, pruner and the study itself."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from automl._errors import UsageError
from automl.preflight import check_existing_sqlite, check_storage_url, mask_url
from automl.record import TrialRecord
from automl.settings import heartbeat_seconds

if TYPE_CHECKING:
    import optuna

FINISHED_STATES = ("COMPLETE", "PRUNED", "FAIL")
JOURNAL_PREFIX = "journal:///"
MAX_RETRIES = 2


def make_storage(
    url: str,
    on_stale_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
) -> optuna.storages.BaseStorage:
    """The Optuna storage for `url`.

    A database URL (SQLite, PostgreSQL, MySQL) gets heartbeats: a trial whose worker
    stops beating (killed, machine lost) is marked FAIL after the grace period by the next
    worker that starts a trial, and retried (a WAITING copy with the same params, at most
    `MAX_RETRIES` times), so no budget is silently lost. `journal:///file.log` is
    Optuna's JournalStorage on a file, for shared file systems (no heartbeats there).

    Args:
        url: The storage URL.
        on_stale_trial: Also called for each trial failed for a lost heartbeat.
    """
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    if url.startswith(JOURNAL_PREFIX):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(journal_path(url)))
    with warnings.catch_warnings():  # experimental since Optuna 2.8, yet the only way
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)

    def stale(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        retry(study, trial)
        if on_stale_trial is not None:
            on_stale_trial(study, trial)

    interval = heartbeat_seconds()
    sqlite_file = _sqlite_file(url)
    write_ahead = bool(sqlite_file) and _use_write_ahead_log(sqlite_file)
    storage = optuna.storages.RDBStorage(
        url,
        heartbeat_interval=interval,
        grace_period=3 * interval,
        heartbeat_stale_trial_callback=stale,
    )
    if write_ahead:  # NORMAL is safe against a power cut only in WAL mode
        _sync_at_checkpoints(storage)
    return storage


def _sqlite_file(url: str) -> str | None:
    """The database file of a `sqlite:///` URL (None for other URLs and in-memory)."""
    if not url.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if "uri" in parsed.query:  # sqlite:///file:x.db?mode=ro&uri=true: left as it is
        return None
    database = parsed.database
    return database if database and database != ":memory:" else None


def _use_write_ahead_log(path: str) -> bool:
    """Put the SQLite file in WAL mode (it stays so): readers no longer wait for a
    writer, so workers sharing one file block each other less. Measured in
    benchmarks/RESULTS.md (scaling). True when the file is in WAL mode."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as connection:
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    except sqlite3.Error:  # a read-only file or folder: the default journal still works
        return False
    return str(mode).lower() == "wal"


def _sync_at_checkpoints(storage: optuna.storages.RDBStorage) -> None:
    """`synchronous=NORMAL` on every connection: in WAL mode a commit no longer waits for
    the disk (a crash of the process loses nothing; a power cut may lose the last
    commits). With WAL: 17 ms of storage work per trial against 21 ms with Optuna's
    defaults (benchmarks/RESULTS.md, scaling)."""
    from sqlalchemy import event

    def on_connect(connection: Any, _record: Any) -> None:
        connection.execute("PRAGMA synchronous=NORMAL")

    event.listen(storage.engine, "connect", on_connect)
    storage.engine.dispose()  # connections opened before the listener reopen with it


def journal_path(url: str) -> str:
    """The file of a journal URL: `journal:///file.log` (relative) or
    `journal:////abs/file.log`, as SQLite URLs spell paths."""
    return url.removeprefix(JOURNAL_PREFIX)


def retried_numbers(trials: list[optuna.trial.FrozenTrial]) -> set[int]:
    """Numbers of failed trials that a later trial retries (their budget moved to it)."""
    return {t.system_attrs["failed_trial"] for t in trials if "failed_trial" in t.system_attrs}


def may_be_shared(storage: str, *, jobs: int, worker: bool) -> bool:
    """Whether other processes may run trials of this study while this one samples.

    True for `--jobs` > 1, for an `automl worker`, and for any storage other than a
    SQLite file (a database server or a journal file exists to be shared: another
    machine may join at any time). Only a lone process on SQLite is known to be alone.
    """
    return jobs > 1 or worker or not storage.startswith("sqlite:")


def make_sampler(
    name: str,
    seed: int | None,
    *,
    shared: bool = False,
    constraints: Callable[[optuna.trial.FrozenTrial], Sequence[float]] | None = None,
) -> optuna.samplers.BaseSampler:
    """The sampler for `name` (see `automl.config.SAMPLERS`), seeded.

    Args:
        name: One of `automl.config.SAMPLERS`.
        seed: The random seed (None: a fresh stream).
        shared: Other processes may run trials of the study at the same time
            (`may_be_shared`). TPE then lies: a trial running elsewhere counts as the
            worst result so far, so a second worker does not sample the same point.
            Alone, the lie changes nothing but costs Optuna's trial cache.
        constraints: Optuna's `constraints_func` (`--max-params`, `--max-latency-ms`;
            see `engine._limits.Limits`): TPE and GP learn the feasible region from
            it; the other samplers do not take one (a rejected model still trains
            nothing).
    """
    import optuna

    if name == "tpe":
        # Multivariate TPE models the space's conditional structure jointly; `group`
        # is experimental in Optuna, and its warning says nothing a user can act on.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=seed,
                multivariate=True,
                group=True,
                n_startup_trials=5,
                constant_liar=shared,
                constraints_func=constraints,
            )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        with warnings.catch_warnings():  # constraints_func is experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.GPSampler(
                seed=seed, n_startup_trials=5, constraints_func=constraints
            )
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    raise UsageError(f"unknown sampler {name!r}.")


def make_pruner(name: str, max_epochs: int) -> optuna.pruners.BasePruner:
    """The pruner for `name` (see `automl.config.PRUNERS`), sized to the epoch budget."""
    import optuna

    if name == "hyperband":
        # The first rung at a tenth of the budget: one epoch is too noisy to judge on
        # long budgets, yet on short ones it is all there is.
        return optuna.pruners.HyperbandPruner(
            min_resource=max(1, max_epochs // 10), max_resource=max_epochs, reduction_factor=3
        )
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=max(1, max_epochs // 10), reduction_factor=3
        )
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UsageError(f"unknown pruner {name!r}.")


def count_finished(study: optuna.Study, *, running: bool = False) -> int:
    """Trials that count toward the budget: complete, pruned and failed ones (a failed
    trial that was retried counts once, through its retry); with `running`, also those
    running anywhere. A trial the plan did not start (0 planned epochs: it waited for a
    long training, or did not fit the time) trained nothing and does not count."""
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    counted = (*FINISHED_STATES, "RUNNING") if running else FINISHED_STATES
    return sum(
        t.state.name in counted
        and t.number not in retried
        and TrialRecord.read(t).planned_epochs != 0
        for t in trials
    )


def budget_spent(study: optuna.Study, trials: int | None) -> bool:
    """True when finished trials plus those running anywhere reach `trials`.

    Shared by every worker of a study, so the budget holds across them; waiting
    (enqueued) trials are not counted: they run before anything new is sampled.
    """
    return trials is not None and count_finished(study, running=True) >= trials


def fail_stale_trials(study: optuna.Study) -> None:
    """Optuna's `fail_stale_trials`: FAIL (and retry) trials whose heartbeat lapsed; a
    no-op without heartbeats. Its experimental-API warning is silenced."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def load_study(name: str, storage: str) -> optuna.Study:
    """Load an existing study for `show`/`export`.

    Raises:
        UsageError: When the storage has no study of that name, listing those it has.
    """
    import optuna

    check_existing_sqlite(storage, name)
    check_storage_url(storage)
    opened = make_storage(storage)
    try:
        return optuna.load_study(study_name=name, storage=opened)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(opened)]
        raise UsageError(
            f"no study {name!r} in {mask_url(storage)}; studies there: "
            f"{', '.join(names) or '(none)'}."
        ) from None
