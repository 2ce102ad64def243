"""Scaling: trials per hour with 1, 2 and 4 workers on one study, and storage time per
trial as the study grows, on SQLite, PostgreSQL and Optuna's JournalStorage.

    python -m benchmarks.scaling [--quick] [--json PATH]

Throughput: per storage and worker count, a fresh study; "spawn" worker processes open
it with the engine's `make_storage` (heartbeats on databases) and default sampler
(`make_sampler("tpe", seed)`, a seed per worker), meet at a barrier, then run
`study.optimize` for the same wall-clock window. The objective suggests four parameters
and burns 10 ms of CPU. Trials finished inside the window give trials per hour. Where
the workers' time went, per wall second: on a CPU, queued for one (Linux schedstat), or
neither (waiting on locks, disk, the server). A storage error (e.g. SQLite "database is
locked") is counted and the worker carries on.

Storage time: `study.optimize(n_trials=1)` trial by trial in one process, RandomSampler
(sampling ~free), an objective that only suggests and reports two intermediate values:
the median is the storage work of the engine's trial loop (stale-trial check, ask,
params, reports, heartbeat, tell), on a near-empty study and after `add_trials` fills it
to 1,000 trials (300 with --quick). TPE at that size is shown beside it as sampler time.
PostgreSQL is a throwaway cluster (tests/_postgres.py), or a row that says why not.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks import benchmark_main

WORKERS = (1, 2, 4)
CPU_S = 0.01


def quadratic(trial: Any) -> float:
    """Four suggested parameters (float, log float, int, categorical) and their bowl."""
    x = trial.suggest_float("x", -10, 10)
    y = trial.suggest_float("y", 1e-3, 10, log=True)
    n = trial.suggest_int("n", 1, 8)
    kind = trial.suggest_categorical("kind", ["a", "b", "c"])
    return (x - 2) ** 2 + (math.log10(y) - 0.5) ** 2 + (n - 3) ** 2 + (kind != "b")


def busy_objective(trial: Any) -> float:
    """The throughput objective: `quadratic` plus `CPU_S` of CPU time (process time, so a
    contended core stretches it rather than skipping it)."""
    end = time.process_time() + CPU_S
    while time.process_time() < end:
        pass
    return quadratic(trial)


def free_objective(trial: Any) -> float:
    """The storage-time objective: no work, two intermediate values as epochs would."""
    value = quadratic(trial)
    trial.report(value + 1, 0)
    trial.report(value, 1)
    return value


def quiet() -> None:
    """No per-trial log lines and no experimental-API warnings (heartbeats) in the output."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)


def clocks() -> tuple[float, float]:
    """This process's CPU seconds and its main thread's seconds queued for a CPU (0 where
    /proc has no schedstat)."""
    try:
        queued = int(Path("/proc/self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        queued = 0.0
    return time.process_time(), queued


# A URL with this prefix opens Optuna's own RDBStorage with its defaults: the baseline
# for what automl's storage (heartbeats, SQLite in WAL mode) changes.
PLAIN = "plain+"


def open_storage(url: str) -> Any:
    """automl's storage for `url`, or Optuna's defaults for a `plain+` URL."""
    import optuna

    from automl.engine._study import make_storage

    if url.startswith(PLAIN):
        return optuna.storages.RDBStorage(url.removeprefix(PLAIN))
    return make_storage(url)


def worker(url: str, name: str, seed: int, window: float, barrier: Any, results: Any) -> None:
    """One worker process: load the study, wait for the others, optimize for `window` s."""
    import optuna

    from automl.engine._study import make_sampler

    quiet()
    sampler = make_sampler("tpe", seed)
    study = optuna.load_study(study_name=name, storage=open_storage(url), sampler=sampler)
    finished: list[float] = []
    errors: Counter[str] = Counter()
    barrier.wait()
    start, end = clocks(), time.monotonic() + window
    while (left := end - time.monotonic()) > 0:
        try:
            done = [lambda _study, _trial: finished.append(time.monotonic())]
            study.optimize(busy_objective, timeout=left, callbacks=done)
        except Exception as exc:  # a storage error ends optimize: count it and go on
            errors[f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}"] += 1
    trials = sum(t <= end for t in finished)
    cpu, queued = (now - then for now, then in zip(clocks(), start, strict=True))
    results.put({"trials": trials, "cpu_s": cpu, "queued_s": queued, "errors": errors})


def throughput(url: str, name: str, workers: int, window: float) -> dict[str, Any]:
    """Trials finished in `window` s by `workers` processes sharing one fresh study."""
    import multiprocessing

    import optuna

    from automl.engine._study import make_sampler

    optuna.create_study(study_name=name, storage=open_storage(url), sampler=make_sampler("tpe", 0))
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(workers + 1), context.Queue()
    processes = [
        context.Process(target=worker, args=(url, name, seed, window, barrier, results))
        for seed in range(workers)
    ]
    for process in processes:
        process.start()
    barrier.wait(timeout=120)  # start-up (imports, connections) stays out of the window
    outcomes = [results.get(timeout=window + 120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    errors: Counter[str] = sum((outcome["errors"] for outcome in outcomes), Counter())
    trials = sum(outcome["trials"] for outcome in outcomes)
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    return {
        "trials_in_window": trials,
        "trials_per_hour": round(trials * 3600 / window),
        "per_worker": [outcome["trials"] for outcome in outcomes],
        # Per wall second, summed over workers: the rest of `workers` is other waiting.
        "on_cpu": round(sum(outcome["cpu_s"] for outcome in outcomes) / window, 2),
        "queued_for_cpu": round(sum(outcome["queued_s"] for outcome in outcomes) / window, 2),
        "errors": dict(errors),
        "states_after": dict(Counter(t.state.name for t in study.get_trials(deepcopy=False))),
    }


def storage_time(url: str, size: int, timed: int, sampled: int) -> dict[str, Any]:
    """Median ms per trial of the trial loop's storage work: a near-empty study against one
    holding `size` trials, alternating trial by trial so that both see the same load."""
    import optuna

    from automl.engine._study import make_sampler

    def one_trial(study: optuna.Study) -> float:
        started = time.perf_counter()
        study.optimize(free_objective, n_trials=1)
        return (time.perf_counter() - started) * 1000

    studies = {
        name: optuna.create_study(
            study_name=name,
            storage=open_storage(url.format(name)),
            sampler=optuna.samplers.RandomSampler(0),
        )
        for name in ("empty", "full")
    }
    # The filler trials come from the same objective, in memory: same parameters, reports.
    scratch = optuna.create_study(sampler=optuna.samplers.RandomSampler(1))
    scratch.optimize(free_objective, n_trials=size)
    started = time.perf_counter()
    studies["full"].add_trials(scratch.trials)
    fill_ms = (time.perf_counter() - started) * 1000 / size
    spent: dict[str, list[float]] = {name: [] for name in studies}
    for _ in range(timed + 1):
        for name, study in studies.items():
            spent[name].append(one_trial(study))
    empty, full = (round(statistics.median(spent[name][1:]), 2) for name in studies)  # [0]: warm-up
    studies["full"].sampler = make_sampler("tpe", 0)
    tpe = round(statistics.median(one_trial(studies["full"]) for _ in range(sampled)), 2)
    return {
        "ms_per_trial_empty": empty,
        "ms_per_trial_full": full,
        "growth": round(full / empty, 2),
        "add_trials_ms_per_trial": round(fill_ms, 2),
        "tpe_ms_per_trial_full": tpe,
        "tpe_extra_ms": round(tpe - full, 2),
    }


def start_postgres(folder: Path) -> tuple[Any, str | None]:
    """A throwaway cluster in `folder` (tests/_postgres.py) and `None`, or `None` and why
    not: missing binaries or a failed start are a skip, not an error."""
    try:
        import pytest

        from tests._postgres import PostgresCluster
    except ImportError as exc:
        return None, f"skipped: {exc}"
    with socket.socket() as probe:  # a free loopback port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cluster = PostgresCluster(folder, port)
    try:
        cluster.start()
    except (Exception, pytest.skip.Exception) as exc:
        cluster.stop()
        detail = getattr(exc, "stderr", None) or str(exc).encode()
        return None, f"skipped: {detail.decode(errors='replace').strip()[-200:]}"
    return cluster, None


def run(quick: bool) -> dict[str, Any]:
    """Throughput and storage time on every storage.

    Args:
        quick: 3 s windows, a 300-trial study and fewer timed trials, instead of 15 s
            windows and 1,000 trials.

    Returns:
        Settings, machine load, and per storage its figures or why it was skipped.
    """
    window, size, timed, sampled = (3.0, 300, 20, 3) if quick else (15.0, 1000, 40, 8)
    quiet()
    result: dict[str, Any] = {
        "window_s": window, "study_size": size, "timed_trials": timed, "tpe_trials": sampled,
        "workers": list(WORKERS), "cpu_s_per_trial": CPU_S, "cpus": os.cpu_count(),
        "load_average_before": round(os.getloadavg()[0], 2), "storages": {},
    }  # fmt: skip
    # The server runs as `postgres`: its folder must be its own, not under a private one.
    work, pg_folder = (Path(tempfile.mkdtemp(prefix=f"automl-{p}-")) for p in ("scaling", "pg"))
    cluster = None
    try:
        cluster, skipped = start_postgres(pg_folder)
        urls = {
            "sqlite": f"sqlite:///{work}/{{}}.db",
            "sqlite, Optuna's defaults": f"{PLAIN}sqlite:///{work}/plain-{{}}.db",
            "postgresql": cluster.url if cluster else None,  # one database, a study per run
            "journal": f"journal:///{work}/{{}}.log",
        }
        for storage, url in urls.items():
            if url is None:
                result["storages"][storage] = {"skipped": skipped}
                continue
            figures = {"storage_time": storage_time(url, size, timed, sampled)}
            for workers in WORKERS:
                name = f"scaling-{workers}"
                figures[f"{workers}_workers"] = throughput(url.format(name), name, workers, window)
            result["storages"][storage] = figures
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(pg_folder, ignore_errors=True)
    result["load_average_after"] = round(os.getloadavg()[0], 2)
    return result


def section(result: dict[str, Any]) -> str:
    """Markdown for RESULTS.md: throughput and storage-time tables, then what they mean."""
    size, cpus = result["study_size"], result["cpus"] or 1
    done = {s: f for s, f in result["storages"].items() if "skipped" not in f}
    lines = [
        "## Scaling",
        "",
        f"One study per run, {result['window_s']:g} s window, {CPU_S * 1000:g} ms CPU per "
        f"trial, default TPE sampler; {cpus} CPUs, load average {result['load_average_before']}"
        f" before, {result['load_average_after']} after. The workers' time per wall second, "
        "summed: on a CPU, queued for one, or waiting on something else (locks, disk, server).",
        "",
        "| Storage | Workers | Trials/h | vs 1 worker | On CPU | Queued for CPU | Other waits "
        "| Storage errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    speedup, waits = {}, {}
    for storage, figures in result["storages"].items():
        if storage not in done:
            lines.append(f"| {storage} | {figures['skipped']} | | | | | | |")
            continue
        base = max(figures["1_workers"]["trials_per_hour"], 1)
        for w in WORKERS:
            r = figures[f"{w}_workers"]
            speedup.setdefault(storage, {})[w] = r["trials_per_hour"] / base
            other = max(0.0, w - r["on_cpu"] - r["queued_for_cpu"])  # clocks differ a bit
            waits[storage] = "locks/disk/server" if other > r["queued_for_cpu"] else "a CPU"
            lines.append(
                f"| {storage} | {w} | {r['trials_per_hour']:,} | {speedup[storage][w]:.2f}× | "
                f"{r['on_cpu']:.2f} | {r['queued_for_cpu']:.2f} | {other:.2f} | "
                f"{sum(r['errors'].values())} |"
            )
    lines += [
        "",
        f"Storage work per trial (ms, median of {result['timed_trials']}; RandomSampler, two "
        f"reports; near-empty and {size:,}-trial studies alternated). TPE's extra is sampling"
        " plus the storage reads and writes it makes: sampler time, for scale.",
        "",
        f"| Storage | Empty | At {size:,} trials | Growth | add_trials, per trial "
        f"| TPE at {size:,} | TPE's extra |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for storage, figures in done.items():
        t = figures["storage_time"]
        lines.append(
            f"| {storage} | {t['ms_per_trial_empty']} | {t['ms_per_trial_full']} | "
            f"{t['growth']:.2f}× | {t['add_trials_ms_per_trial']} | "
            f"{t['tpe_ms_per_trial_full']} | {t['tpe_extra_ms']} |"
        )
    errors = [
        f"{s} ×{w}: {f[f'{w}_workers']['errors']}"
        for s, f in done.items()
        for w in WORKERS
        if f[f"{w}_workers"]["errors"]
    ]
    scaling = "; ".join(f"{s} {v[2]:.2f}× and {v[4]:.2f}×" for s, v in speedup.items())
    alone = max((f["1_workers"]["queued_for_cpu"] for f in done.values()), default=0)
    noisy = (
        f"A single worker alone spent up to {alone:.0%} of its time queued for a CPU: other "
        "processes competed for the machine, so treat these speedups as rough. "
        if alone > 0.1
        else ""
    )
    growth = "; ".join(f"{s} {f['storage_time']['growth']:.2f}×" for s, f in done.items())
    lines += [
        "",
        f"**What it means.** On {cpus} CPUs 2 workers can at best double one worker's rate and "
        f"4 cannot beat {min(4, cpus)}×; other processes on the machine and the database "
        "server take their share (time queued for a CPU), and locks and disk writes make "
        "workers wait (other waits). Measured, "
        f"2 and 4 workers against 1: {scaling or 'no storage ran'}. {noisy}From an empty study to "
        f"{size:,} trials the storage work per trial changes by: {growth or 'not measured'}. "
        f"At {WORKERS[-1]} workers they mostly waited: "
        f"{'; '.join(f'{s} on {what}' for s, what in waits.items()) or 'nothing measured'}. "
        f"Storage errors: {'; '.join(errors) or 'none'}.",
    ]
    return "\n".join(lines)


def main() -> None:
    """`python -m benchmarks.scaling [--quick] [--json PATH]`."""
    benchmark_main(__doc__, run, section, "short windows, 300 trials")


if __name__ == "__main__":
    main()
