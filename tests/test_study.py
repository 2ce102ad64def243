"""The Optuna side of the engine (`automl/engine/_study.py`): which studies count as
shared, TPE's constant liar between two real worker processes, and storages built
without Optuna's deprecated names."""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from pathlib import Path

import optuna
import pytest

from automl.engine._study import (
    fail_stale_trials,
    make_sampler,
    make_storage,
    may_be_shared,
)
from tests.conftest import sqlite_url

REPO = Path(__file__).resolve().parents[1]
STUDY = "shared"
DISTRIBUTIONS = {
    "lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
    "units": optuna.distributions.IntDistribution(8, 128, step=8),
    "activation": optuna.distributions.CategoricalDistribution(["relu", "gelu", "tanh"]),
}


@pytest.mark.parametrize(
    ("storage", "jobs", "worker", "shared"),
    [
        ("sqlite:///automl.db", 1, False, False),
        ("sqlite:///automl.db", 2, False, True),
        ("sqlite:///automl.db", 1, True, True),
        ("postgresql://u:p@db/automl", 1, False, True),
        ("journal:///automl.log", 1, False, True),
    ],
)
def test_a_study_is_shared_unless_one_process_owns_a_sqlite_file(storage, jobs, worker, shared):
    assert may_be_shared(storage, jobs=jobs, worker=worker) is shared


def test_tpe_lies_only_when_shared():
    assert make_sampler("tpe", 0, shared=True)._constant_liar is True
    assert make_sampler("tpe", 0)._constant_liar is False


def test_storage_uses_no_deprecated_optuna_name(tmp_path):
    """Optuna 4.9 renamed `RetryFailedTrialCallback` and `failed_trial_callback`; the old
    names warn (FutureWarning) and go in Optuna 6."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        storage = make_storage(sqlite_url(tmp_path / "s.db"))
    assert storage.get_heartbeat_stale_trial_callback() is not None


def test_a_trial_whose_worker_stopped_beating_is_retried_once(tmp_path, monkeypatch):
    """The stale-trial callback under its Optuna 4.9 name: the lost trial is FAIL, and
    a WAITING copy with its params carries its number."""
    monkeypatch.setenv("AUTOML_HEARTBEAT", "1")  # stale after 3 s without a beat
    storage = make_storage(sqlite_url(tmp_path / "s.db"))
    study = optuna.create_study(study_name=STUDY, storage=storage)
    lost = study.ask({"units": DISTRIBUTIONS["units"]})
    storage.record_heartbeat(lost._trial_id)  # then its worker dies
    # SQLite keeps the beat and "now" to the whole second, so 3 s of grace lapse after
    # 3 to 4 s: poll, with room to spare, instead of guessing the sleep.
    give_up = time.monotonic() + 15
    while study.get_trials()[0].state.name == "RUNNING" and time.monotonic() < give_up:
        time.sleep(0.5)
        fail_stale_trials(study)
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {0: "FAIL", 1: "WAITING"}
    retry = study.get_trials()[1]
    assert retry.params == lost.params and retry.system_attrs["failed_trial"] == 0


def _work(url: str, shared: bool, trials: int, index: int, ready: Path) -> None:
    """One worker process: TPE seeded 0 in every worker, the worst case (the workers'
    random streams agree, so only what they read from the study sets them apart). Both
    wait until both are ready (a loaded machine may start one seconds later); then the
    second starts half a trial later, so that the two sample at different moments."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")
    (ready / f"ready-{index}").touch()
    give_up = time.monotonic() + 60
    while len(list(ready.glob("ready-*"))) < 2 and time.monotonic() < give_up:
        time.sleep(0.02)
    time.sleep(0.15 * index)
    study = optuna.load_study(
        study_name=STUDY,
        storage=make_storage(url),
        sampler=make_sampler("tpe", 0, shared=shared),
    )

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        units = trial.suggest_int("units", 8, 128, step=8)
        activation = trial.suggest_categorical("activation", ["relu", "gelu", "tanh"])
        trial.set_user_attr("sampled", time.time())  # the point is in the study from here
        time.sleep(0.3)  # a training: long enough for the other worker to sample meanwhile
        return (lr - 0.01) ** 2 + (units - 64) ** 2 / 1e4 + (activation != "gelu") / 10

    study.optimize(objective, n_trials=trials)


def _two_workers(tmp_path: Path, *, shared: bool) -> list[optuna.trial.FrozenTrial]:
    """Two worker processes on one SQLite study already past TPE's random start-up."""
    url = sqlite_url(tmp_path / f"shared-{shared}.db")
    _past_start_up(url)
    ready = tmp_path / f"ready-{shared}"
    ready.mkdir()
    command = [sys.executable, "-m", "tests.test_study", url, str(int(shared)), "8"]
    workers = [subprocess.Popen([*command, str(index), str(ready)], cwd=REPO) for index in range(2)]
    assert all(worker.wait(timeout=120) == 0 for worker in workers)
    return optuna.load_study(study_name=STUDY, storage=url).get_trials()[6:]


def _past_start_up(url: str) -> optuna.Study:
    """A SQLite study with 6 complete trials: TPE samples from them, not at random."""
    study = optuna.create_study(study_name=STUDY, storage=make_storage(url))
    for value, (lr, units, activation) in enumerate(
        [(1e-3, 32, "relu"), (3e-2, 96, "gelu"), (2e-4, 16, "tanh"), (5e-3, 64, "relu"),
         (8e-2, 128, "gelu"), (1e-2, 48, "tanh")]
    ):  # fmt: skip
        params = {"lr": lr, "units": units, "activation": activation}
        study.add_trial(
            optuna.create_trial(params=params, distributions=DISTRIBUTIONS, value=float(value))
        )
    return study


def _running_duplicates(
    trials: list[optuna.trial.FrozenTrial], *, visible: bool = False
) -> list[tuple[int, int]]:
    """Pairs of trials with the same point that ran at the same time; with `visible`,
    only those where the first one's point was in the study before the second one
    started sampling. Two workers that sample within the same few milliseconds cannot
    see each other's point: no sampler can help there without a lock."""
    return [
        (a.number, b.number)
        for a in trials
        for b in trials
        if a.number < b.number
        and a.params == b.params
        and b.datetime_start < a.datetime_complete
        and (not visible or a.user_attrs["sampled"] < b.datetime_start.timestamp())
    ]


@pytest.mark.parametrize("shared", [False, True])
def test_a_running_point_is_drawn_again_only_without_the_liar(tmp_path, shared):
    """Two samplers whose random streams agree, the second asking while the first's
    point runs: without the liar it draws that point again; with it, another. (In one
    process, so that no timing decides it; the test below runs two real workers.)"""
    url = sqlite_url(tmp_path / "s.db")
    study = _past_start_up(url)
    first = optuna.load_study(study_name=STUDY, storage=url, sampler=make_sampler("tpe", 0))
    running = first.ask(DISTRIBUTIONS)
    sampler = make_sampler("tpe", 0, shared=shared)
    second = optuna.load_study(study_name=STUDY, storage=url, sampler=sampler).ask(DISTRIBUTIONS)
    assert (second.params == running.params) is not shared
    assert len(study.get_trials()) == 8


def test_two_workers_with_constant_liar_never_run_the_same_point(tmp_path):
    """With the liar, a point running on one worker is never drawn again by the other
    while it runs (the test above shows that without it, it would be)."""
    shared = _two_workers(tmp_path, shared=True)
    assert len(shared) == 16 and all(t.state.name == "COMPLETE" for t in shared)
    overlapping = [
        (a, b) for a in shared for b in shared if a.number < b.number < a.number + 2
        and b.datetime_start < a.datetime_complete
    ]  # fmt: skip
    assert overlapping, "the two workers never ran at the same time"
    assert _running_duplicates(shared, visible=True) == []


if __name__ == "__main__":  # a worker of test_two_workers_...: URL, shared, trials, index, ready
    _work(sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
