"""Memory across trials (`automl/engine/_memory.py`): RSS read through psutil, the watch
that retires a process, and a real search recycled at the default AUTOML_RECYCLE_MB."""

from __future__ import annotations

import textwrap
import time

import optuna
import pytest

from automl.engine._memory import MemoryWatch, rss_mb
from automl.engine._study import count_finished, make_storage
from tests.conftest import cli_env, run_cli, sqlite_url

MB = 2**20


def _allocate(megabytes: int) -> bytes:
    """`megabytes` of memory that is really resident (every page written)."""
    return bytes(range(256)) * (megabytes * MB // 256)


def test_rss_follows_what_the_process_holds():
    before = rss_mb()
    assert before is not None and before > 1
    block = _allocate(64)
    assert rss_mb() - before > 50
    del block


def test_the_watch_fires_past_its_limit_and_never_at_zero():
    watch, off = MemoryWatch(30), MemoryWatch(0)
    assert not watch.grown() and not off.grown()  # the first check sets the baseline
    block = _allocate(64)
    assert watch.grown() and watch.handing_over and watch.growth > 30
    assert not off.grown() and not off.handing_over
    del block


def test_the_watch_keeps_the_trials_once_a_fresh_process_would_start_too_late():
    late = MemoryWatch(30, hand_over_by=time.monotonic() - 1.0)
    assert not late.grown()
    block = _allocate(64)
    assert not late.grown() and not late.handing_over and late.growth > 30
    del block


def test_the_watch_keeps_the_long_trainings_whatever_the_growth():
    """A fresh process would take one of the long training's epochs to start."""
    watch = MemoryWatch(30)
    assert not watch.grown()
    block = _allocate(64)
    assert not watch.grown(keep=lambda: True) and not watch.handing_over and watch.growth > 30
    assert watch.grown(keep=lambda: False) and watch.handing_over
    del block


# Each model built keeps 60 MB alive, as a leak across trials would: past the default
# 100 MB of growth after the third trial.
LEAKY_SPACE = """
import keras

_KEPT = []

def build_model(hp):
    _KEPT.append(bytes(range(256)) * (60 * 2**20 // 256))
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(hp.Int("units", 8, 32, step=8), activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
"""


@pytest.mark.slow
def test_a_search_at_the_default_limit_hands_its_study_over(tmp_path):
    """AUTOML_RECYCLE_MB unset (100 MB), as users run it: a search whose trials leak
    60 MB each retires its process and a fresh worker finishes the budget; every trial
    is counted once and none is lost."""
    (tmp_path / "leaky.py").write_text(textwrap.dedent(LEAKY_SPACE))
    storage = sqlite_url(tmp_path / "automl.db")
    env = cli_env()
    env.pop("AUTOML_RECYCLE_MB", None)  # conftest turns recycling off for the suite
    result = run_cli(
        "search", "iris", "--space", "leaky.py:build_model", "--trials", "5",
        "--max-epochs", "2", "--storage", storage, "--tracking-uri", "none",
        "--out", tmp_path / "out", cwd=tmp_path, timeout=600, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "AUTOML_RECYCLE_MB=100" in result.stderr
    assert "fresh worker processes take the next trials" in result.stderr
    study = optuna.load_study(study_name="iris-leaky.build_model", storage=make_storage(storage))
    assert count_finished(study) == 5 and len(study.trials) == 5
    assert len({t.user_attrs["worker"] for t in study.trials}) >= 2
    log = (tmp_path / "out" / "workers" / "worker-1.log").read_text()
    assert "worker done" in log


def test_the_pool_warns_once_about_a_worker_that_crashed_and_waits_for_all(tmp_path, caplog):
    """A worker that ends neither done (0) nor retired (75) is named once with its log;
    the pool returns when every worker has exited, whenever each exited."""
    import subprocess
    import sys

    from automl.config import SearchConfig
    from automl.engine._observer import SearchObserver
    from automl.engine._workers import WorkerPool, worker_log

    pool = WorkerPool(SearchConfig("iris", trials=1, out=tmp_path), deadline=None)
    for index, code in ((1, 0), (2, 3)):
        worker = subprocess.Popen([sys.executable, "-c", f"import sys; sys.exit({code})"])
        worker.index = index
        pool.workers.append(worker)
    with caplog.at_level("WARNING", logger="automl"):
        pool.wait(optuna.create_study(), SearchObserver(), lambda: False)
        pool.wait(optuna.create_study(), SearchObserver(), lambda: False)  # not again
    crashes = [r.getMessage() for r in caplog.records if "exited with code" in r.getMessage()]
    assert crashes == [f"worker 2 exited with code 3; its log: {worker_log(tmp_path, 2)}"]
