"""What the benchmarks changed in the engine: SQLite in WAL mode, the frozen heap, no
late workers."""

from __future__ import annotations

import gc
import sqlite3
import time

import pytest

from automl.config import SearchConfig
from automl.engine._memory import frozen_heap
from automl.engine._study import _sqlite_file, make_storage
from automl.engine._workers import MIN_WORKER_SECONDS, spawn_workers


def test_sqlite_storage_runs_in_wal_mode_with_normal_sync(tmp_path):
    """The file stays in WAL mode, and the storage's connections skip the per-commit
    fsync (synchronous=NORMAL is 1)."""
    path = tmp_path / "automl.db"
    storage = make_storage(f"sqlite:///{path}")
    with sqlite3.connect(path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with storage.engine.connect() as connection:
        synchronous = connection.exec_driver_sql("PRAGMA synchronous").fetchone()[0]
    assert synchronous == 1


def test_sqlite_urls_wal_does_not_touch():
    """In-memory databases and `uri=true` URLs are left as they are (no stray files)."""
    assert _sqlite_file("sqlite:///:memory:") is None
    assert _sqlite_file("sqlite://") is None
    assert _sqlite_file("sqlite:///file:x.db?mode=ro&uri=true") is None
    assert _sqlite_file("postgresql://u@h/db") is None
    assert _sqlite_file("sqlite:////tmp/a.db") == "/tmp/a.db"


@pytest.fixture
def nothing_frozen():
    """Start with no frozen objects, whatever earlier tests in this process froze, and
    give back what was frozen before."""
    frozen_before = gc.get_freeze_count()
    gc.unfreeze()
    yield
    gc.unfreeze()
    if frozen_before:
        gc.freeze()


def test_frozen_heap_is_undone_and_leaves_a_callers_freeze_alone(nothing_frozen):
    assert gc.get_freeze_count() == 0
    with frozen_heap():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    callers_object = [object()]
    gc.freeze()
    try:
        with frozen_heap():
            pass
        # The count alone can drop as other threads free frozen objects; what must hold is
        # that the caller's objects stay out of the collected generations.
        assert gc.get_freeze_count() > 0
        assert all(o is not callers_object for o in gc.get_objects())
    finally:
        gc.unfreeze()
    assert any(o is callers_object for o in gc.get_objects())


def test_no_worker_starts_when_too_little_budget_is_left(tmp_path):
    """With under MIN_WORKER_SECONDS of --timeout left, its start-up alone would overrun."""
    config = SearchConfig("iris", study="late", out=str(tmp_path / "out"))
    deadline = time.monotonic() + MIN_WORKER_SECONDS - 5
    assert spawn_workers(config, [1, 2], deadline) == []
